use switchboard::{HubContext, HubError};

struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    #[on_connected]
    async fn connected(&self, cx: &HubContext<Self>, name: String) {
        let _ = (cx, name);
    }

    #[on_disconnected]
    async fn disconnected(&self, cx: &HubContext<Self>, error: Option<HubError>) -> bool {
        let _ = (cx, error);
        true
    }
}

struct Other;

#[switchboard::hub("/other")]
impl Other {
    #[on_connected]
    fn not_async(&self) {}

    #[on_disconnected(always)]
    async fn with_arguments(&self) {}
}

struct Twice;

#[switchboard::hub("/twice")]
impl Twice {
    #[on_connected]
    async fn first(&self) {}

    #[on_connected]
    async fn second(&self) {}

    #[on_connected]
    #[on_disconnected]
    async fn both(&self) {}
}

fn main() {}
