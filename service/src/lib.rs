//! The Switchboard relay: holds client connections and tunnels them to app servers over
//! multiplexed server connections, speaking the Azure SignalR Service server protocol.
#![deny(missing_docs)]
