#[switchboard::hub("/my")]
struct MyHub;

#[switchboard::hub("/fn")]
async fn method() {}

struct Generic<T>(T);

#[switchboard::hub("/generic")]
impl<T: Send + Sync + 'static> Generic<T> {}

fn main() {}
