//! Load generator and benchmark harness for Switchboard.
//!
//! * [`proto`] — the SignalR JSON / MessagePack hub messages the generator sends and reads, and
//!   the raw-WebSocket framing of the floor server;
//! * [`conn`] — opening connections: source addresses 127.0.0.2–9, negotiate (with service-mode
//!   redirects), WebSocket upgrade with 4 KiB buffers, handshake;
//! * [`load`] — the single-threaded generator (echo, broadcast, group, idle scenarios) with an
//!   HDR histogram of latencies;
//! * [`floor`] — the raw tokio-tungstenite echo/broadcast server used as the floor;
//! * [`harness`] — runs servers and generator on separate cores, interleaved and repeated;
//! * [`report`] — JSON lines, Markdown and SVG.
//!
//! See `bench/README.md` for how to run it and the latest results.

pub mod conn;
pub mod floor;
pub mod harness;
pub mod load;
pub mod procstat;
pub mod proto;
pub mod report;
