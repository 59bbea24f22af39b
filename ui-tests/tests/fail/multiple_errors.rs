//! Every error of an item is reported at once, each on its own token.

use switchboard::{HubContext, HubStream};

struct MyHub;

#[switchboard::hub("chat", unknown = 1)]
impl MyHub {
    fn not_async(&self) {}

    async fn generic<T>(&self, value: T) {
        let _ = value;
    }

    async fn borrowed(&self, text: &str, cx: &HubContext<Self>, again: &HubContext<Self>) {
        let _ = (text, cx, again);
    }

    async fn nested(&self, items: Option<HubStream<i32>>) {
        let _ = items;
    }

    #[hub(bogus)]
    async fn bogus(&mut self) {}

    async fn echo(&self) {}

    #[hub(name = "echo")]
    async fn echo_again(&self) {}
}

fn main() {
    // The impl block is kept (so the rest of the program still resolves its methods), but
    // without a `Hub` impl: mounting the hub is one more error.
    let _ = switchboard::Switchboard::builder().mount(MyHub);
}
