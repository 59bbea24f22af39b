//! Endpoint routing: which service endpoint a negotiating client is sent to, and which
//! endpoints a message goes to. The default is the Azure SDK's: clients go to an online
//! primary endpoint (an online secondary one when no primary is online), picked at random
//! with weights by free capacity; messages go to every online endpoint. An app routes
//! otherwise with its own [`EndpointRouter`] ([`ServiceOptions::endpoint_router`](super::ServiceOptions::endpoint_router)).

use super::endpoint::{EndpointType, ServiceEndpoint};
use crate::connection::request::RequestInfo;
use crate::lifetime::Target;

/// What an endpoint's service reports in its status pings (all 0 until it has answered one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointMetrics {
    /// Clients of the hub at the service.
    pub client_connection_count: i32,
    /// Server connections of the hub at the service, from every app server.
    pub server_connection_count: i32,
    /// How many connections the service takes for the hub (0: not reported).
    pub connection_capacity: i32,
}

/// An endpoint as a router sees it, at the moment of the choice.
#[derive(Debug, Clone, Copy)]
pub struct EndpointStatus<'a> {
    endpoint: &'a ServiceEndpoint,
    online: bool,
    metrics: EndpointMetrics,
}

impl<'a> EndpointStatus<'a> {
    /// An endpoint's status (routers are given these; tests of a router make their own).
    pub fn new(endpoint: &'a ServiceEndpoint, online: bool, metrics: EndpointMetrics) -> Self {
        Self {
            endpoint,
            online,
            metrics,
        }
    }

    /// The endpoint as configured.
    pub fn endpoint(&self) -> &'a ServiceEndpoint {
        self.endpoint
    }

    /// The endpoint's name (empty when it has none).
    pub fn name(&self) -> &'a str {
        self.endpoint.name()
    }

    /// Primary or secondary.
    pub fn endpoint_type(&self) -> EndpointType {
        self.endpoint.endpoint_type()
    }

    /// Whether at least one server connection to it is up.
    pub fn online(&self) -> bool {
        self.online
    }

    /// What its last status ping reported.
    pub fn metrics(&self) -> EndpointMetrics {
        self.metrics
    }
}

/// Chooses endpoints, as the Azure SDK's `IEndpointRouter`. Both methods have the default
/// behaviour; an app overrides what it routes otherwise (for example, negotiate by a region
/// header) and may call [`default_negotiate_endpoint`] and [`online_endpoints`] for the rest.
///
/// The endpoints given are those in service: while an endpoint is being added (until its
/// app servers match the others') or removed it is not offered to negotiate.
///
/// ```
/// use switchboard::RequestInfo;
/// use switchboard::service::{EndpointRouter, EndpointStatus, default_negotiate_endpoint};
///
/// /// Clients asking for a region (`?region=east`) go to the endpoint of that name.
/// struct ByRegion;
///
/// impl EndpointRouter for ByRegion {
///     fn negotiate_endpoint<'e>(
///         &self,
///         request: &RequestInfo,
///         endpoints: &'e [EndpointStatus<'e>],
///     ) -> Option<&'e EndpointStatus<'e>> {
///         let wanted = request.query("region");
///         endpoints
///             .iter()
///             .find(|e| e.online() && Some(e.name()) == wanted)
///             .or_else(|| default_negotiate_endpoint(endpoints))
///     }
/// }
/// ```
pub trait EndpointRouter: Send + Sync + 'static {
    /// The endpoint a negotiating client is sent to; `None` answers that the service is not
    /// connected (HTTP 500). By default [`default_negotiate_endpoint`].
    fn negotiate_endpoint<'e>(
        &self,
        request: &RequestInfo,
        endpoints: &'e [EndpointStatus<'e>],
    ) -> Option<&'e EndpointStatus<'e>> {
        let _ = request;
        default_negotiate_endpoint(endpoints)
    }

    /// The endpoints a message to `target` goes to (a group change goes to
    /// [`Target::Connection`] of its connection). Offline endpoints among them are skipped.
    /// By default every online endpoint ([`online_endpoints`]): each service delivers to the
    /// clients it holds.
    fn message_endpoints<'e>(
        &self,
        target: &Target,
        endpoints: &'e [EndpointStatus<'e>],
    ) -> Vec<&'e EndpointStatus<'e>> {
        let _ = target;
        online_endpoints(endpoints)
    }
}

/// The router of [`EndpointRouter`]'s defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultEndpointRouter;

impl EndpointRouter for DefaultEndpointRouter {}

/// Every online endpoint.
pub fn online_endpoints<'e>(endpoints: &'e [EndpointStatus<'e>]) -> Vec<&'e EndpointStatus<'e>> {
    endpoints.iter().filter(|e| e.online).collect()
}

/// The Azure SDK's choice: the online primary endpoints, else the online secondary ones;
/// among them one at random, weighted by free capacity (each weighs
/// `max(⌊(capacity − clients − servers) / capacity × 1000⌋, 1)`; all weigh the same when
/// one of them reports no capacity). `None` when no endpoint is online.
pub fn default_negotiate_endpoint<'e>(endpoints: &'e [EndpointStatus<'e>]) -> Option<&'e EndpointStatus<'e>> {
    let online = |kind| {
        endpoints
            .iter()
            .filter(|e| e.online && e.endpoint_type() == kind)
            .collect::<Vec<_>>()
    };
    let mut candidates = online(EndpointType::Primary);
    if candidates.is_empty() {
        candidates = online(EndpointType::Secondary);
    }
    weighted_pick(&candidates, random_below)
}

/// Picks one of `candidates` by free capacity, `below(n)` giving a random number in `0..n`.
fn weighted_pick<'e>(
    candidates: &[&'e EndpointStatus<'e>],
    below: impl FnOnce(u64) -> u64,
) -> Option<&'e EndpointStatus<'e>> {
    match candidates {
        [] => None,
        [only] => Some(only),
        _ if candidates.iter().any(|e| e.metrics.connection_capacity <= 0) => {
            let index = usize::try_from(below(candidates.len() as u64)).unwrap_or(0);
            candidates.get(index).copied()
        }
        _ => {
            let weights: Vec<u64> = candidates.iter().map(|e| weight(e.metrics)).collect();
            let mut point = below(weights.iter().sum());
            for (candidate, weight) in candidates.iter().zip(&weights) {
                if point < *weight {
                    return Some(candidate);
                }
                point -= weight;
            }
            candidates.last().copied()
        }
    }
}

/// An endpoint's weight for the pick: its free share of capacity, in thousandths, at least 1.
fn weight(metrics: EndpointMetrics) -> u64 {
    let capacity = i64::from(metrics.connection_capacity);
    let free = capacity - i64::from(metrics.client_connection_count) - i64::from(metrics.server_connection_count);
    u64::try_from(free * 1000 / capacity).unwrap_or(0).max(1)
}

/// A random number in `0..n` (`n` > 0).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(kind: EndpointType, name: &str) -> ServiceEndpoint {
        ServiceEndpoint::new("Endpoint=http://a.local;AccessKey=abc;Version=1.0;", kind, name)
    }

    fn metrics(clients: i32, servers: i32, capacity: i32) -> EndpointMetrics {
        EndpointMetrics {
            client_connection_count: clients,
            server_connection_count: servers,
            connection_capacity: capacity,
        }
    }

    #[test]
    fn online_primaries_first_then_online_secondaries_else_none() {
        let (p, s) = (
            endpoint(EndpointType::Primary, "p"),
            endpoint(EndpointType::Secondary, "s"),
        );
        let statuses = [
            EndpointStatus::new(&p, true, EndpointMetrics::default()),
            EndpointStatus::new(&s, true, EndpointMetrics::default()),
        ];
        for _ in 0..20 {
            assert_eq!(default_negotiate_endpoint(&statuses).unwrap().name(), "p");
        }
        let statuses = [
            EndpointStatus::new(&p, false, EndpointMetrics::default()),
            EndpointStatus::new(&s, true, EndpointMetrics::default()),
        ];
        assert_eq!(default_negotiate_endpoint(&statuses).unwrap().name(), "s");
        let statuses = [
            EndpointStatus::new(&p, false, EndpointMetrics::default()),
            EndpointStatus::new(&s, false, EndpointMetrics::default()),
        ];
        assert!(default_negotiate_endpoint(&statuses).is_none());
        assert_eq!(online_endpoints(&statuses).len(), 0);
    }

    #[test]
    fn weights_follow_free_capacity() {
        let (a, b) = (
            endpoint(EndpointType::Primary, "a"),
            endpoint(EndpointType::Primary, "b"),
        );
        // a: 100 of 1000 free (weight 100 - 1 server share), b: all free (weight 999).
        let statuses = [
            EndpointStatus::new(&a, true, metrics(899, 1, 1000)),
            EndpointStatus::new(&b, true, metrics(0, 1, 1000)),
        ];
        let candidates: Vec<&EndpointStatus<'_>> = statuses.iter().collect();
        assert_eq!((weight(statuses[0].metrics), weight(statuses[1].metrics)), (100, 999));
        // The point walks the weights in order: 0..100 is a, 100..1099 is b.
        assert_eq!(weighted_pick(&candidates, |_| 99).unwrap().name(), "a");
        assert_eq!(weighted_pick(&candidates, |_| 100).unwrap().name(), "b");
        assert_eq!(weighted_pick(&candidates, |n| n - 1).unwrap().name(), "b");
        // A full endpoint keeps the least weight; one without capacity makes it uniform.
        assert_eq!(weight(metrics(1000, 5, 1000)), 1);
        let statuses = [
            EndpointStatus::new(&a, true, metrics(899, 1, 0)),
            EndpointStatus::new(&b, true, metrics(0, 1, 1000)),
        ];
        let candidates: Vec<&EndpointStatus<'_>> = statuses.iter().collect();
        assert_eq!(weighted_pick(&candidates, |n| n - 1).unwrap().name(), "b");
        assert_eq!(weighted_pick(&candidates, |_| 0).unwrap().name(), "a");
        // Over many real draws the split follows the weights.
        let statuses = [
            EndpointStatus::new(&a, true, metrics(750, 0, 1000)),
            EndpointStatus::new(&b, true, metrics(0, 0, 1000)),
        ];
        let to_a = (0..4000)
            .filter(|_| default_negotiate_endpoint(&statuses).unwrap().name() == "a")
            .count();
        assert!((600..1000).contains(&to_a), "about 1 in 5 to a: {to_a}");
    }
}
