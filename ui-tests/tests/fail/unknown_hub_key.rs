struct MyHub;

#[switchboard::hub("/my", detailed_errors = true, max_size = 10)]
impl MyHub {}

struct BadTransport;

#[switchboard::hub("/transport", transports = [WebSocket])]
impl BadTransport {}

struct BadProtocol;

#[switchboard::hub("/protocol", protocols = [json, msgpack])]
impl BadProtocol {}

fn main() {}
