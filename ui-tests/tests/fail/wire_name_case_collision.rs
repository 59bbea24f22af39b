struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn echo(&self, text: String) -> String {
        text
    }

    #[hub(name = "ECHO")]
    async fn loud_echo(&self, text: String) -> String {
        text.to_uppercase()
    }
}

fn main() {}
