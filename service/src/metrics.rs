//! Traffic counters and the Prometheus text exposition of `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of messages and bytes, on both faces, in both directions.
///
/// On the client face a message is one chunk of bytes as a transport delivered it (received)
/// or one send to a client (sent); on the server face it is one service-protocol record.
#[derive(Default)]
pub(crate) struct Metrics {
    client_in: Counter,
    client_out: Counter,
    server_in: Counter,
    server_out: Counter,
}

#[derive(Default)]
struct Counter {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// The connections of one hub at one moment.
pub(crate) struct HubSnapshot {
    pub hub: String,
    /// Client connections by transport name.
    pub clients: Vec<(&'static str, usize)>,
    pub servers: usize,
}

impl Metrics {
    pub(crate) fn client_received(&self, bytes: usize) {
        self.client_in.add(bytes);
    }

    pub(crate) fn client_sent(&self, bytes: usize) {
        self.client_out.add(bytes);
    }

    pub(crate) fn server_received(&self, bytes: usize) {
        self.server_in.add(bytes);
    }

    pub(crate) fn server_sent(&self, bytes: usize) {
        self.server_out.add(bytes);
    }

    /// The Prometheus text format (version 0.0.4) of the counters and of `hubs`.
    pub(crate) fn render(&self, hubs: &[HubSnapshot]) -> String {
        let mut out = String::new();
        out.push_str("# HELP switchboard_client_connections Client connections, by hub and transport.\n");
        out.push_str("# TYPE switchboard_client_connections gauge\n");
        for hub in hubs {
            for (transport, count) in &hub.clients {
                let _ = writeln!(
                    out,
                    "switchboard_client_connections{{hub=\"{}\",transport=\"{transport}\"}} {count}",
                    escape(&hub.hub)
                );
            }
        }
        out.push_str("# HELP switchboard_server_connections App-server connections, by hub.\n");
        out.push_str("# TYPE switchboard_server_connections gauge\n");
        for hub in hubs.iter().filter(|hub| hub.servers > 0) {
            let _ = writeln!(
                out,
                "switchboard_server_connections{{hub=\"{}\"}} {}",
                escape(&hub.hub),
                hub.servers
            );
        }
        let counters = [
            ("client", "in", self.client_in.get()),
            ("client", "out", self.client_out.get()),
            ("server", "in", self.server_in.get()),
            ("server", "out", self.server_out.get()),
        ];
        out.push_str("# HELP switchboard_messages_total Messages relayed, by face and direction ");
        out.push_str("(client: chunks received and sends; server: service-protocol records).\n");
        out.push_str("# TYPE switchboard_messages_total counter\n");
        for (face, direction, (messages, _)) in counters {
            let _ = writeln!(
                out,
                "switchboard_messages_total{{face=\"{face}\",direction=\"{direction}\"}} {messages}"
            );
        }
        out.push_str("# HELP switchboard_bytes_total Bytes relayed, by face and direction.\n");
        out.push_str("# TYPE switchboard_bytes_total counter\n");
        for (face, direction, (_, bytes)) in counters {
            let _ = writeln!(
                out,
                "switchboard_bytes_total{{face=\"{face}\",direction=\"{direction}\"}} {bytes}"
            );
        }
        out
    }
}

/// A label value, escaped as the text format requires.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_text_format() {
        let metrics = Metrics::default();
        metrics.client_received(10);
        metrics.client_received(5);
        metrics.server_sent(7);
        let text = metrics.render(&[HubSnapshot {
            hub: "a\"b".to_owned(),
            clients: vec![("WebSockets", 2)],
            servers: 1,
        }]);
        assert!(text.contains("switchboard_client_connections{hub=\"a\\\"b\",transport=\"WebSockets\"} 2\n"));
        assert!(text.contains("switchboard_server_connections{hub=\"a\\\"b\"} 1\n"));
        assert!(text.contains("switchboard_messages_total{face=\"client\",direction=\"in\"} 2\n"));
        assert!(text.contains("switchboard_bytes_total{face=\"client\",direction=\"in\"} 15\n"));
        assert!(text.contains("switchboard_bytes_total{face=\"server\",direction=\"out\"} 7\n"));
    }
}
