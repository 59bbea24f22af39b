#[switchboard::client]
trait Client {
    fn not_async(&self);

    async fn generic<T: serde::Serialize>(&self, value: T);

    async fn by_value(self);

    async fn no_receiver(value: i32);

    async fn upload(&self, items: switchboard::HubStream<i32>);

    const LIMIT: usize;

    #[client(rename = "x")]
    async fn renamed(&self);

    async fn notify(&self);

    #[client(name = "NOTIFY")]
    async fn notify_again(&self);
}

fn main() {}
