//! Options given in the attribute become `Hub::PATH` and `Hub::configure`.

use switchboard::protocol::Protocol;
use switchboard::{Hub, HubOptions, TransportType};

struct Tuned;

#[switchboard::hub(
    "/tuned/hub",
    detailed_errors = true,
    max_message_size = 65536,
    transports = [WebSockets, LongPolling],
    protocols = [json],
    stateful_reconnect = true,
    parallel_invocations = 2,
    stream_buffer_capacity = 20,
    authorize = false
)]
impl Tuned {
    async fn ping(&self) {}
}

struct MessagePackOnly;

const LIMIT: usize = 1 << 20;

#[switchboard::hub("/mp", protocols = [messagepack], transports = [ServerSentEvents], max_message_size = LIMIT * 2)]
impl MessagePackOnly {}

/// No path: mapped with `.hub(path, hub)`.
struct Unmapped;

#[switchboard::hub]
impl Unmapped {
    async fn ping(&self) {}
}

struct Guarded;

#[switchboard::hub("/guarded", authorize = true)]
impl Guarded {}

fn configured<H: Hub>() -> HubOptions {
    let mut options = HubOptions::default();
    H::configure(&mut options);
    options
}

fn main() {
    assert_eq!(<Tuned as Hub>::PATH, Some("/tuned/hub"));
    let options = configured::<Tuned>();
    assert!(options.enable_detailed_errors);
    assert_eq!(options.maximum_receive_message_size, Some(65536));
    assert_eq!(
        options.transports,
        [TransportType::WebSockets, TransportType::LongPolling]
    );
    assert_eq!(options.supported_protocols, [Protocol::Json]);
    assert!(options.allow_stateful_reconnects);
    assert_eq!(options.maximum_parallel_invocations_per_client, 2);
    assert_eq!(options.stream_buffer_capacity, 20);
    assert!(!options.require_authorization);

    let options = configured::<MessagePackOnly>();
    assert_eq!(options.supported_protocols, [Protocol::MessagePack]);
    assert_eq!(options.transports, [TransportType::ServerSentEvents]);
    assert_eq!(options.maximum_receive_message_size, Some(2 << 20));

    // Without options, `configure` leaves the defaults alone.
    assert_eq!(<Unmapped as Hub>::PATH, None);
    let defaults = HubOptions::default();
    let options = configured::<Unmapped>();
    assert_eq!(options.enable_detailed_errors, defaults.enable_detailed_errors);
    assert_eq!(
        options.maximum_receive_message_size,
        defaults.maximum_receive_message_size
    );
    assert_eq!(options.transports, defaults.transports);
    assert_eq!(options.supported_protocols, defaults.supported_protocols);

    assert!(configured::<Guarded>().require_authorization);

    let _app = switchboard::Switchboard::builder()
        .mount(Tuned)
        .mount(MessagePackOnly)
        .hub("/unmapped", Unmapped)
        .build()
        .unwrap();
    // A hub without a path cannot be mounted.
    let error = switchboard::Switchboard::builder().mount(Unmapped).build().unwrap_err();
    assert!(error.to_string().contains("has no path"), "{error}");
    // `authorize = true` needs an authenticator.
    let error = switchboard::Switchboard::builder().mount(Guarded).build().unwrap_err();
    assert!(error.to_string().contains("requires authorization"), "{error}");
}
