struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    fn echo(&self, text: String) -> String {
        text
    }
}

fn main() {}
