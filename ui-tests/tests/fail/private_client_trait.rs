mod chat {
    #[switchboard::client]
    trait Private {
        async fn notify(&self);
    }

    pub struct Public;

    #[switchboard::hub("/chat", client = Private)]
    impl Public {}
}

fn main() {}
