struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn numbers(&self) -> impl Iterator<Item = i32> {
        0..3
    }

    async fn maybe_numbers(&self) -> Result<impl Iterator<Item = i32>, switchboard::HubError> {
        Ok(0..3)
    }

    async fn borrowed(&self) -> &'static str {
        "text"
    }
}

fn main() {}
