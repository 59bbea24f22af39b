struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn echo<T: serde::de::DeserializeOwned + serde::Serialize>(&self, value: T) -> T {
        value
    }
}

fn main() {}
