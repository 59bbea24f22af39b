use switchboard::HubContext;

struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn twice(&self, first: &HubContext<Self>, second: HubContext<Self>) {
        let _ = (first, second);
    }
}

fn main() {}
