#[switchboard::client]
struct Client;

#[switchboard::client(name = "x")]
trait WithArguments {}

#[switchboard::client]
trait Generic<T> {
    async fn take(&self, value: T);
}

fn main() {}
