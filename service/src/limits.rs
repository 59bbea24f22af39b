//! The relay's limits on clients: connections per node and per client address, and the rate
//! of negotiate requests and of connection attempts per address. Each refusal is an HTTP
//! answer with its reason (503 when the node is full, 429 for one address, with
//! `Retry-After` for a rate) and a count in `/metrics`. Every limit is off unless configured.
//!
//! Addresses are the TCP peers the relay sees: behind a proxy or a load balancer that is the
//! proxy, whose clients then share its limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The configured limits (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Client connections this node holds at most.
    pub max_connections: Option<usize>,
    /// Client connections one address holds at most.
    pub max_connections_per_address: Option<usize>,
    /// Negotiate requests one address may make per second.
    pub negotiates_per_address_per_second: Option<u32>,
    /// Connection attempts (a WebSocket or an event stream opened) one address may make per
    /// second.
    pub connects_per_address_per_second: Option<u32>,
}

/// What a request is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// A negotiate request.
    Negotiate,
    /// A WebSocket upgrade or an event stream: a client connection opens.
    Connect,
}

/// Why a request was refused; also the label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NodeFull,
    AddressFull,
    NegotiateRate,
    ConnectRate,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::NodeFull,
        Refusal::AddressFull,
        Refusal::NegotiateRate,
        Refusal::ConnectRate,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::NodeFull => "connections",
            Refusal::AddressFull => "address_connections",
            Refusal::NegotiateRate => "negotiate_rate",
            Refusal::ConnectRate => "connect_rate",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Refusal::NodeFull => "The relay holds as many client connections as it may. Try again later.",
            Refusal::AddressFull => "Too many connections from this address.",
            Refusal::NegotiateRate => "Too many negotiate requests from this address. Try again in a second.",
            Refusal::ConnectRate => "Too many connection attempts from this address. Try again in a second.",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::NodeFull => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        };
        let mut response = (status, self.text()).into_response();
        if matches!(self, Refusal::NegotiateRate | Refusal::ConnectRate) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// One address's connections and this second's requests.
#[derive(Debug)]
struct Address {
    connections: usize,
    second: Instant,
    negotiates: u32,
    connects: u32,
}

/// The limits and what they count.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    connections: AtomicUsize,
    addresses: Mutex<HashMap<IpAddr, Address>>,
    /// When idle addresses were last forgotten.
    swept: Mutex<Instant>,
    refused: [AtomicU64; 4],
}

/// Idle addresses (no connection, no request this second) are forgotten this often.
const SWEEP: Duration = Duration::from_secs(1);

impl Admission {
    pub(crate) fn new(limits: Limits) -> Self {
        Admission {
            limits,
            connections: AtomicUsize::new(0),
            addresses: Mutex::new(HashMap::new()),
            swept: Mutex::new(Instant::now()),
            refused: Default::default(),
        }
    }

    fn addresses(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Address>> {
        self.addresses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request from `address` may do what it is `opening`; the refusal is counted.
    pub(crate) fn admit(&self, address: Option<IpAddr>, opening: Opening) -> Result<(), Refusal> {
        let refused = self.check(address, opening);
        if let Err(refusal) = refused {
            self.refused[refusal as usize].fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    fn check(&self, address: Option<IpAddr>, opening: Opening) -> Result<(), Refusal> {
        if self
            .limits
            .max_connections
            .is_some_and(|max| self.connections.load(Ordering::Relaxed) >= max)
        {
            return Err(Refusal::NodeFull);
        }
        let limits = &self.limits;
        let per_address = limits.max_connections_per_address.is_some()
            || limits.negotiates_per_address_per_second.is_some()
            || limits.connects_per_address_per_second.is_some();
        let Some(address) = address.filter(|_| per_address) else {
            return Ok(());
        };
        let now = Instant::now();
        self.sweep(now);
        let mut addresses = self.addresses();
        let entry = addresses.entry(address).or_insert(Address {
            connections: 0,
            second: now,
            negotiates: 0,
            connects: 0,
        });
        if now.duration_since(entry.second) >= Duration::from_secs(1) {
            entry.second = now;
            entry.negotiates = 0;
            entry.connects = 0;
        }
        if limits
            .max_connections_per_address
            .is_some_and(|max| entry.connections >= max)
        {
            return Err(Refusal::AddressFull);
        }
        let (count, limit, refusal) = match opening {
            Opening::Negotiate => (
                &mut entry.negotiates,
                limits.negotiates_per_address_per_second,
                Refusal::NegotiateRate,
            ),
            Opening::Connect => (
                &mut entry.connects,
                limits.connects_per_address_per_second,
                Refusal::ConnectRate,
            ),
        };
        if limit.is_some_and(|limit| *count >= limit) {
            return Err(refusal);
        }
        *count += 1;
        Ok(())
    }

    /// Forgets the addresses with no connection and no request for a second, once a second.
    fn sweep(&self, now: Instant) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(*swept) < SWEEP {
                return;
            }
            *swept = now;
        }
        self.addresses()
            .retain(|_, a| a.connections > 0 || now.duration_since(a.second) < SWEEP);
    }

    /// A client connection from `address` opened; it counts until the guard is dropped.
    pub(crate) fn connected(self: &std::sync::Arc<Self>, address: Option<IpAddr>) -> Connected {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let counted = address.filter(|_| self.limits.max_connections_per_address.is_some());
        if let Some(address) = counted {
            let now = Instant::now();
            self.addresses()
                .entry(address)
                .or_insert(Address {
                    connections: 0,
                    second: now,
                    negotiates: 0,
                    connects: 0,
                })
                .connections += 1;
        }
        Connected {
            admission: self.clone(),
            address: counted,
        }
    }

    /// The refusals so far, as Prometheus text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str("# HELP switchboard_client_refusals_total Client requests refused by a limit, by limit.\n");
        out.push_str("# TYPE switchboard_client_refusals_total counter\n");
        for refusal in Refusal::ALL {
            let _ = writeln!(
                out,
                "switchboard_client_refusals_total{{limit=\"{}\"}} {}",
                refusal.label(),
                self.refused[refusal as usize].load(Ordering::Relaxed)
            );
        }
    }
}

/// A counted client connection; dropping it uncounts it.
#[derive(Debug)]
pub(crate) struct Connected {
    admission: std::sync::Arc<Admission>,
    address: Option<IpAddr>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.admission.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut addresses = self.admission.addresses();
            if let Some(entry) = addresses.get_mut(&address) {
                entry.connections = entry.connections.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn limits_count_connections_per_node_and_per_address() {
        let admission = Arc::new(Admission::new(Limits {
            max_connections: Some(3),
            max_connections_per_address: Some(2),
            ..Limits::default()
        }));
        let a1 = admission.connected(A);
        let _a2 = admission.connected(A);
        assert_eq!(admission.admit(A, Opening::Connect), Err(Refusal::AddressFull));
        assert_eq!(admission.admit(B, Opening::Negotiate), Ok(()));
        let _b1 = admission.connected(B);
        assert_eq!(admission.admit(B, Opening::Connect), Err(Refusal::NodeFull));
        drop(a1);
        assert_eq!(admission.admit(A, Opening::Connect), Ok(()));
        let mut text = String::new();
        admission.render_metrics(&mut text);
        assert!(
            text.contains("switchboard_client_refusals_total{limit=\"address_connections\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_client_refusals_total{limit=\"connections\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn limits_rates_reset_each_second_and_idle_addresses_are_forgotten() {
        let admission = Admission::new(Limits {
            negotiates_per_address_per_second: Some(2),
            connects_per_address_per_second: Some(1),
            ..Limits::default()
        });
        assert_eq!(admission.admit(A, Opening::Negotiate), Ok(()));
        assert_eq!(admission.admit(A, Opening::Negotiate), Ok(()));
        assert_eq!(admission.admit(A, Opening::Negotiate), Err(Refusal::NegotiateRate));
        assert_eq!(admission.admit(A, Opening::Connect), Ok(()));
        assert_eq!(admission.admit(A, Opening::Connect), Err(Refusal::ConnectRate));
        assert_eq!(
            admission.admit(B, Opening::Connect),
            Ok(()),
            "another address has its own"
        );
        // A second later the counts start again, and the old entries go.
        {
            let mut addresses = admission.addresses();
            for entry in addresses.values_mut() {
                entry.second -= Duration::from_secs(2);
            }
        }
        *admission.swept.lock().unwrap() -= Duration::from_secs(2);
        assert_eq!(admission.admit(A, Opening::Negotiate), Ok(()));
        assert_eq!(admission.addresses().len(), 1, "B was idle and is forgotten");
        let refused = Refusal::NegotiateRate.into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            Refusal::NodeFull.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn limits_off_count_nothing_per_address() {
        let admission = Arc::new(Admission::new(Limits::default()));
        for _ in 0..1000 {
            assert_eq!(admission.admit(A, Opening::Connect), Ok(()));
        }
        let _c = admission.connected(A);
        assert!(admission.addresses().is_empty());
    }
}
