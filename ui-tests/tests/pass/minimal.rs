//! The smallest hub: one method, a path, the default untyped client.

struct Echo;

#[switchboard::hub("/echo")]
impl Echo {
    async fn echo(&self, message: String) -> String {
        message
    }
}

fn main() {
    assert_eq!(<Echo as switchboard::Hub>::PATH, Some("/echo"));
    let _app = switchboard::Switchboard::builder().mount(Echo).build().unwrap();
}
