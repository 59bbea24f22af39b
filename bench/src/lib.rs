//! Load generator and benchmark harness for Switchboard.
//!
//! * [`proto`] — the SignalR JSON / MessagePack hub messages the generator sends and reads, the
//!   raw-WebSocket framing of the floor (and the Node `ws` server), and Socket.IO packets;
//! * [`conn`] — opening connections: source addresses 127.0.0.2–9, negotiate (with service-mode
//!   redirects), WebSocket upgrade with 4 KiB buffers, SignalR handshake or Socket.IO opening;
//! * [`load`] — the single-threaded generator (echo, broadcast, group, open-loop, idle
//!   scenarios) with an HDR histogram of latencies;
//! * [`floor`] — the raw tokio-tungstenite echo/broadcast server used as the floor;
//! * [`node`] — checking `node` and installing the Node.js comparators' packages;
//! * [`plan`] — targets, the plan of scenario points, the records of a run, shared bounds;
//! * [`harness`] — runs servers and generator on separate cores, interleaved and repeated;
//! * [`procstat`] — CPU, memory and limits from `/proc`;
//! * [`report`] — JSON lines, Markdown and SVG.
//!
//! See `bench/README.md` for how to run it and the latest results.

pub mod conn;
pub mod floor;
pub mod harness;
pub mod load;
pub mod node;
pub mod plan;
pub mod procstat;
pub mod proto;
pub mod report;
