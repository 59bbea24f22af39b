use futures_util::Stream;

struct MyHub {
    items: Vec<i32>,
}

#[switchboard::hub("/my")]
impl MyHub {
    async fn items(&self) -> impl Stream<Item = &i32> {
        futures_util::stream::iter(self.items.iter())
    }

    async fn copied(&self) -> impl Stream<Item = i32> {
        futures_util::stream::iter(self.items.iter().copied())
    }
}

fn main() {}
