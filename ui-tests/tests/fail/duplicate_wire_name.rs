struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn send_message(&self, text: String) {
        let _ = text;
    }

    #[hub(name = "SendMessage")]
    async fn send_other(&self, text: String) {
        let _ = text;
    }
}

fn main() {}
