#[switchboard::client]
trait Client {
    async fn with_body(&self) {}
}

fn main() {}
