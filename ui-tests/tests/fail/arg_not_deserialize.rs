struct NotWire;

struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn take(&self, value: NotWire) {
        let _ = value;
    }
}

fn main() {}
