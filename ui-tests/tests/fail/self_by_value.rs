struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn consume(self) {}

    async fn exclusive(&mut self) {}

    async fn shared(self: std::sync::Arc<Self>) {}

    async fn no_receiver(value: i32) {
        let _ = value;
    }
}

fn main() {}
