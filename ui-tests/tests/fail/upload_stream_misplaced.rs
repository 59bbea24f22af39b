use switchboard::HubStream;

struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn optional(&self, items: Option<HubStream<i32>>) {
        let _ = items;
    }

    async fn in_vec(&self, items: Vec<HubStream<i32>>) {
        let _ = items;
    }

    async fn returned(&self) -> HubStream<i32> {
        unimplemented!()
    }
}

fn main() {}
