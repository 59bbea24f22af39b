struct MyHub;

#[switchboard::hub("/my")]
impl MyHub {
    #[hub(rename = "Other")]
    async fn renamed(&self) {}

    #[hub(name = "")]
    async fn unnamed(&self) {}

    #[hub(name = Other)]
    async fn unquoted(&self) {}
}

fn main() {}
