use switchboard::HubContext;

struct MyHub;
struct OtherHub;

#[switchboard::hub("/my")]
impl MyHub {
    async fn mutable(&self, cx: &mut HubContext<Self>) {
        let _ = cx;
    }

    async fn other(&self, cx: &HubContext<OtherHub>) {
        let _ = cx;
    }

    #[on_connected]
    async fn connected(&self, cx: &HubContext<Self>) -> Result<(), String> {
        let _ = cx;
        Ok(())
    }

    #[on_disconnected]
    async fn disconnected(&self, error: Option<String>) {
        let _ = error;
    }
}

#[switchboard::hub("/other")]
impl OtherHub {}

fn main() {}
