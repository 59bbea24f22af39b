trait Plain {
    async fn notify(&self);
}

struct MyHub;

#[switchboard::hub("/my", client = Plain)]
impl MyHub {}

fn main() {}
