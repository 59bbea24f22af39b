use switchboard::{HubContext, HubError};

#[switchboard::client]
trait Asker {
    async fn notify(&self);

    async fn confirm(&self, question: String) -> bool;
}

struct MyHub;

#[switchboard::hub("/my", client = Asker)]
impl MyHub {
    async fn ask_everyone(&self, cx: &HubContext<Self>) -> Result<bool, HubError> {
        // Fire-and-forget methods reach many connections; a client result needs one.
        cx.clients().all().notify().await?;
        cx.clients().all().confirm("sure?".into()).await
    }
}

fn main() {}
