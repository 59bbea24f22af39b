struct MyHub;

#[switchboard::hub("/my", detailed_errors = "yes", max_message_size = -1, parallel_invocations = 2.5)]
impl MyHub {}

fn main() {}
