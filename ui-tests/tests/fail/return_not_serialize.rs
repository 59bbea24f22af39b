struct NotWire;

struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn give(&self) -> NotWire {
        NotWire
    }

    async fn stream(&self) -> impl futures_util::Stream<Item = NotWire> {
        futures_util::stream::empty()
    }
}

fn main() {}
