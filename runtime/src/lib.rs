//! Switchboard: SignalR-compatible real-time hubs for Rust.
#![deny(missing_docs)]

pub mod protocol;
pub mod types;
