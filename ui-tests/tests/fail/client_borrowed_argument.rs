#[switchboard::client]
trait Client {
    async fn notify(&self, text: &str);

    async fn answer(&self) -> &'static str;
}

fn main() {}
