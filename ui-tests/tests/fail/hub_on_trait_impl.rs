trait Greeter {
    async fn greet(&self) -> String;
}

struct MyHub;

#[switchboard::hub("/my")]
impl Greeter for MyHub {
    async fn greet(&self) -> String {
        "hello".into()
    }
}

fn main() {}
