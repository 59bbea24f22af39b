//! One hub type's service endpoints: a [`ServiceHub`] per endpoint (strong server
//! connections to primary endpoints, weak ones to secondary endpoints), which of them
//! negotiate sends clients to and which a message goes to, as the [`EndpointRouter`]
//! decides; endpoints added and removed while the app runs, scaled as the Azure SDK scales
//! them within `ServiceScaleTimeout`.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use tokio::task::JoinSet;

use super::connection_string::ConnectionString;
use super::endpoint::ServiceEndpoint;
use super::hub::{Phase, ServiceHub};
use super::options::{ServiceOptions, ServiceOptionsError};
use super::router::{DefaultEndpointRouter, EndpointRouter, EndpointStatus};
use crate::connection::claims::Claims;
use crate::connection::dispatcher::Dispatcher;
use crate::connection::request::RequestInfo;
use crate::lifetime::Target;
use crate::options::HubOptions;
use crate::protocol::service::link::frame;
use crate::protocol::service::{Ping, ServiceMessage, ShutdownMode};
use crate::transport::{NegotiateRedirect, RedirectError};

/// How many status pings at most go every second while an endpoint starts (see `status_pings`).
const STARTUP_STATUS_PINGS: u32 = 10;

/// How often an endpoint is asked for its status (clients, servers, capacity).
const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// … and while it is being removed, to see soon when its last client has gone.
const REMOVING_STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How often an added endpoint's server list is compared with the other endpoints'.
const SCALE_POLL: Duration = Duration::from_secs(5);

/// The text negotiate answers (HTTP 500) when no endpoint can take the client.
pub(crate) const NOT_CONNECTED: &str = "Azure SignalR Service is not connected yet, please try again later.";

/// The endpoints of one hub type.
pub(crate) struct HubEndpoints {
    /// The hub's name at the service.
    pub name: String,
    options: ServiceOptions,
    server_id: String,
    hubs: RwLock<Arc<[Arc<ServiceHub>]>>,
    /// The hub code its tunnelled clients run (set while the app is built).
    dispatcher: OnceLock<Arc<dyn Dispatcher>>,
    /// Every server connection and status loop, until the app shuts down.
    tasks: Mutex<Option<JoinSet<()>>>,
    /// Serialises adding and removing endpoints.
    scaling: tokio::sync::Mutex<()>,
}

/// Why an endpoint could not be added or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleError {
    /// The app is not started, or is shutting down.
    NotRunning,
    /// The endpoint to add is already one of the app's.
    AlreadyAdded,
    /// No endpoint of the app has that service address.
    NotFound,
    /// The endpoints asked for are refused (a bad connection string; no primary endpoint
    /// left), with the Azure SDK's text.
    Options(ServiceOptionsError),
}

impl std::fmt::Display for ScaleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaleError::NotRunning => f.write_str("the app is not running"),
            ScaleError::AlreadyAdded => f.write_str("an endpoint with this service address is already configured"),
            ScaleError::NotFound => f.write_str("no endpoint with this service address is configured"),
            ScaleError::Options(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ScaleError {}

impl HubEndpoints {
    /// A hub's endpoints, all in service from the start.
    pub fn new(
        name: String,
        options: ServiceOptions,
        server_id: String,
        endpoints: &[(ServiceEndpoint, ConnectionString)],
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            name,
            options,
            server_id,
            hubs: RwLock::new(Arc::from(Vec::new())),
            dispatcher: OnceLock::new(),
            tasks: Mutex::new(None),
            scaling: tokio::sync::Mutex::new(()),
        });
        let hubs: Vec<Arc<ServiceHub>> = endpoints
            .iter()
            .map(|(endpoint, connection_string)| this.make_hub(endpoint, connection_string, Phase::Serving))
            .collect();
        *this.hubs.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(hubs);
        this
    }

    fn make_hub(
        &self,
        endpoint: &ServiceEndpoint,
        connection_string: &ConnectionString,
        phase: Phase,
    ) -> Arc<ServiceHub> {
        ServiceHub::new(
            self.name.clone(),
            endpoint.clone(),
            connection_string.clone(),
            self.options.clone(),
            self.server_id.clone(),
            phase,
        )
    }

    /// The hub code its tunnelled clients run; the first one set stays.
    pub fn set_dispatcher(&self, dispatcher: Arc<dyn Dispatcher>) {
        let _ = self.dispatcher.set(dispatcher);
    }

    /// The endpoints now.
    pub fn hubs(&self) -> Arc<[Arc<ServiceHub>]> {
        self.hubs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn router(&self) -> &dyn EndpointRouter {
        match &self.options.endpoint_router {
            Some(router) => router.as_ref(),
            None => &DefaultEndpointRouter,
        }
    }

    /// Opens every endpoint's server connections.
    pub fn start(&self) {
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = Some(JoinSet::new());
        for hub in self.hubs().iter() {
            self.spawn(hub);
        }
    }

    /// Runs an endpoint: its server connections and its status pings.
    fn spawn(&self, hub: &Arc<ServiceHub>) -> bool {
        let Some(dispatcher) = self.dispatcher.get() else {
            return false;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tasks) = tasks.as_mut() else {
            return false;
        };
        for slot in 0..hub.slot_count() {
            tasks.spawn(super::server_connection::run(hub.clone(), dispatcher.clone(), slot));
        }
        tasks.spawn(status_pings(hub.clone()));
        // Finished tasks (of removed endpoints) are let go.
        while tasks.try_join_next().is_some() {}
        true
    }

    /// Resolves once every endpoint has a server connection up.
    pub async fn until_connected(&self) {
        for hub in self.hubs().iter() {
            hub.until_connected().await;
        }
    }

    /// The endpoints a message to `target` goes to: the router's choice among the online
    /// ones (an endpoint being added or removed included: it may hold clients of other app
    /// servers already, or still).
    pub fn message_targets(&self, target: &Target) -> Vec<Arc<ServiceHub>> {
        let hubs = self.hubs();
        if self.options.endpoint_router.is_none() {
            return hubs.iter().filter(|hub| hub.is_connected()).cloned().collect();
        }
        let statuses: Vec<EndpointStatus<'_>> = hubs
            .iter()
            .map(|hub| EndpointStatus::new(&hub.endpoint, hub.is_connected(), hub.metrics()))
            .collect();
        let chosen = self.router().message_endpoints(target, &statuses);
        chosen
            .into_iter()
            .filter(|status| status.online())
            .filter_map(|status| statuses.iter().position(|s| std::ptr::eq(s, status)))
            .map(|index| hubs[index].clone())
            .collect()
    }

    /// The endpoint a negotiating client goes to: the router's choice among the endpoints in
    /// service.
    fn negotiate_target(&self, request: &RequestInfo) -> Option<Arc<ServiceHub>> {
        let hubs: Vec<Arc<ServiceHub>> = self
            .hubs()
            .iter()
            .filter(|hub| hub.phase() == Phase::Serving)
            .cloned()
            .collect();
        let statuses: Vec<EndpointStatus<'_>> = hubs
            .iter()
            .map(|hub| EndpointStatus::new(&hub.endpoint, hub.is_connected(), hub.metrics()))
            .collect();
        let chosen = self.router().negotiate_endpoint(request, &statuses)?;
        let index = statuses.iter().position(|s| std::ptr::eq(s, chosen))?;
        chosen.online().then(|| hubs[index].clone())
    }

    /// Adds an endpoint while the app runs: its server connections open; once its app
    /// servers are those of the endpoints in service (asked every 5 s), or when
    /// `ServiceScaleTimeout` passes (with a warning), it takes clients. Resolves then.
    pub async fn add(&self, endpoint: ServiceEndpoint) -> Result<(), ScaleError> {
        let _scaling = self.scaling.lock().await;
        let connection_string = ConnectionString::parse(endpoint.connection_string())
            .map_err(|e| ScaleError::Options(ServiceOptionsError::ConnectionString(e)))?;
        if self
            .hubs()
            .iter()
            .any(|hub| hub.connection_string.endpoint() == connection_string.endpoint())
        {
            return Err(ScaleError::AlreadyAdded);
        }
        let hub = self.make_hub(&endpoint, &connection_string, Phase::Adding);
        {
            let mut hubs = self.hubs.write().unwrap_or_else(|e| e.into_inner());
            let mut list = hubs.to_vec();
            list.push(hub.clone());
            *hubs = Arc::from(list);
        }
        if !self.spawn(&hub) {
            self.drop_hub(&hub);
            return Err(ScaleError::NotRunning);
        }
        let deadline = tokio::time::Instant::now() + self.options.service_scale_timeout;
        tracing::info!(hub = %self.name, endpoint = %connection_string.endpoint(), "adding a service endpoint");
        let stable = tokio::time::timeout_at(deadline, hub.until_connected()).await.is_ok()
            && self.until_servers_match(&hub, deadline).await;
        if !stable {
            tracing::warn!(
                hub = %self.name,
                endpoint = %connection_string.endpoint(),
                "Timeout({}ms) reached while waiting for the added endpoint's servers to match; it takes clients anyway.",
                self.options.service_scale_timeout.as_millis()
            );
        }
        hub.set_phase(Phase::Serving);
        tracing::info!(hub = %self.name, endpoint = %connection_string.endpoint(), "the added service endpoint takes clients");
        Ok(())
    }

    /// Whether the added endpoint's app servers came to match the other online endpoints'
    /// before `deadline`.
    async fn until_servers_match(&self, added: &Arc<ServiceHub>, deadline: tokio::time::Instant) -> bool {
        loop {
            let round = (tokio::time::Instant::now() + SCALE_POLL).min(deadline);
            let involved: Vec<Arc<ServiceHub>> = self
                .hubs()
                .iter()
                .filter(|hub| Arc::ptr_eq(hub, added) || (hub.phase() == Phase::Serving && hub.is_connected()))
                .cloned()
                .collect();
            for hub in &involved {
                hub.forget_servers();
                if let Some(writer) = hub.writer(None) {
                    let _ = writer.try_send(frame(&ServiceMessage::Ping(Ping::servers_request())));
                }
            }
            let answered = |hubs: &[Arc<ServiceHub>]| hubs.iter().all(|hub| hub.servers().is_some());
            while !answered(&involved) && tokio::time::Instant::now() < round {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let lists: Vec<Option<Vec<String>>> = involved.iter().map(|hub| hub.servers()).collect();
            if lists.iter().all(Option::is_some) && lists.windows(2).all(|pair| pair[0] == pair[1]) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep_until(round).await;
        }
    }

    /// Removes the endpoint with `connection_string`'s service address: it takes no new
    /// clients, its server connections tell the service they go (`fin:0`), and it is
    /// dropped once the service reports no clients of the hub or `ServiceScaleTimeout`
    /// passes. Resolves then.
    pub async fn remove(&self, connection_string: &str) -> Result<(), ScaleError> {
        let _scaling = self.scaling.lock().await;
        let wanted = ConnectionString::parse(connection_string)
            .map_err(|e| ScaleError::Options(ServiceOptionsError::ConnectionString(e)))?;
        let hubs = self.hubs();
        let hub = hubs
            .iter()
            .find(|hub| hub.connection_string.endpoint() == wanted.endpoint() && hub.phase() != Phase::Removing)
            .cloned()
            .ok_or(ScaleError::NotFound)?;
        let primaries_left = hubs
            .iter()
            .filter(|other| !Arc::ptr_eq(other, &hub) && !other.is_weak() && other.phase() != Phase::Removing)
            .count();
        if !hub.is_weak() && primaries_left == 0 {
            return Err(ScaleError::Options(ServiceOptionsError::NoPrimaryEndpoint));
        }
        tracing::info!(hub = %self.name, endpoint = %wanted.endpoint(), "removing a service endpoint");
        // Only answers to pings sent after the `fin:0` count (the status pings go every
        // second from now; one answer may already be on its way).
        let answers = hub.status_answers();
        hub.write_everywhere(frame(&ServiceMessage::Ping(Ping::shutdown(ShutdownMode::DropClients))));
        hub.set_phase(Phase::Removing);
        let gone =
            move |hub: &ServiceHub| !hub.is_connected() || (hub.status_answers() >= answers + 2 && !hub.has_clients());
        let timeout = self.options.service_scale_timeout;
        if tokio::time::timeout(timeout, hub.until(gone)).await.is_err() {
            tracing::warn!(
                hub = %self.name,
                endpoint = %wanted.endpoint(),
                "Timeout({}ms) reached while waiting for the removed endpoint's clients to leave; it is dropped now.",
                timeout.as_millis()
            );
        }
        hub.stopping.cancel();
        self.drop_hub(&hub);
        tracing::info!(hub = %self.name, endpoint = %wanted.endpoint(), "the service endpoint is removed");
        Ok(())
    }

    fn drop_hub(&self, hub: &Arc<ServiceHub>) {
        let mut hubs = self.hubs.write().unwrap_or_else(|e| e.into_inner());
        let list: Vec<Arc<ServiceHub>> = hubs.iter().filter(|h| !Arc::ptr_eq(h, hub)).cloned().collect();
        *hubs = Arc::from(list);
    }

    /// Stops every endpoint: the primary ones as `GracefulShutdown` says (messages still go
    /// to the secondary ones meanwhile), then the secondary ones; waits for their tasks.
    pub async fn shut_down(&self) {
        let hubs = self.hubs();
        let (weak, strong): (Vec<_>, Vec<_>) = hubs.iter().partition(|hub| hub.is_weak());
        futures_util::future::join_all(strong.iter().map(|hub| hub.shut_down())).await;
        for hub in weak {
            hub.stopping.cancel();
        }
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// Asks an endpoint for its status as soon as it is connected, then every 10 s, until it
/// stops. Until the endpoint has answered a ping sent with all its initial server connections
/// up, it asks again every second and at once when the last of them comes up, so that the
/// first metrics negotiate weighs count every server connection (at most
/// [`STARTUP_STATUS_PINGS`] times). While it is being removed, every second.
async fn status_pings(hub: Arc<ServiceHub>) {
    let mut startup_pings = 0;
    let mut settled = false;
    loop {
        tokio::select! {
            _ = hub.until_connected() => {}
            _ = hub.stopping.cancelled() => return,
        }
        let complete = hub.is_fully_connected();
        let answers = hub.status_answers();
        if let Some(writer) = hub.writer(None) {
            let _ = writer.try_send(frame(&ServiceMessage::Ping(Ping::status(true))));
        }
        let starting = !settled && startup_pings < STARTUP_STATUS_PINGS;
        startup_pings += 1;
        let interval = if hub.phase() == Phase::Removing || starting {
            REMOVING_STATUS_INTERVAL
        } else {
            STATUS_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = hub.until(|hub| hub.phase() == Phase::Removing), if interval == STATUS_INTERVAL => {}
            _ = hub.until_fully_connected(), if starting && !complete => {}
            _ = hub.stopping.cancelled() => return,
        }
        // The ping sent with every connection up has been answered: the metrics are whole.
        settled = settled || (complete && hub.status_answers() > answers);
    }
}

impl NegotiateRedirect for HubEndpoints {
    fn redirect(
        &self,
        options: &HubOptions,
        request: &RequestInfo,
        claims: Option<&Claims>,
        user_id: Option<String>,
        hub_path: &str,
    ) -> Result<Vec<u8>, RedirectError> {
        match self.negotiate_target(request) {
            Some(hub) => super::negotiate::redirect(&hub, options, request, claims, user_id, hub_path),
            None => Err(RedirectError {
                status: 500,
                text: NOT_CONNECTED.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue;
    use crate::service::EndpointType;

    fn endpoints(router: Option<Arc<dyn EndpointRouter>>) -> Arc<HubEndpoints> {
        let list: Vec<(ServiceEndpoint, ConnectionString)> = [
            ("east", EndpointType::Primary, "http://east.local"),
            ("west", EndpointType::Primary, "http://west.local"),
            ("backup", EndpointType::Secondary, "http://backup.local"),
        ]
        .into_iter()
        .map(|(name, kind, url)| {
            let text = format!("Endpoint={url};AccessKey=abc;Version=1.0;");
            let parsed = ConnectionString::parse(&text).unwrap();
            (ServiceEndpoint::new(text, kind, name), parsed)
        })
        .collect();
        let options = ServiceOptions {
            endpoint_router: router,
            ..ServiceOptions::default()
        };
        HubEndpoints::new("chat".into(), options, "server-a".into(), &list)
    }

    /// Marks an endpoint online (one server connection up); the receiver keeps it open.
    fn online(hub: &ServiceHub) -> queue::Receiver<bytes::Bytes> {
        let (sender, receiver) = queue::channel(4);
        hub.attach(0, sender);
        receiver
    }

    fn names(hubs: &[Arc<ServiceHub>]) -> Vec<&str> {
        hubs.iter().map(|hub| hub.endpoint.name()).collect()
    }

    fn request(query: &str) -> RequestInfo {
        RequestInfo::from_service(&[], query)
    }

    /// The status answer of a service with `servers` server connections.
    fn answer(hub: &ServiceHub, servers: i32) {
        hub.status_received(crate::protocol::service::ServiceStatus {
            active: false,
            client_count: Some(0),
            server_count: Some(servers),
            capacity: Some(1000),
        });
    }

    /// Waits for the next status ping; returns how long it took.
    async fn next_ping(pings: &mut queue::Receiver<bytes::Bytes>) -> Duration {
        let started = tokio::time::Instant::now();
        let frame = pings.recv().await.expect("a status ping");
        assert!(!frame.is_empty());
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn status_is_asked_again_when_the_last_server_connection_is_up_then_every_ten_seconds() {
        let endpoints = endpoints(None);
        let hub = endpoints.hubs()[0].clone();
        let slots = hub.slot_count();
        assert!(slots > 1);
        let (sender, mut pings) = queue::channel(64);
        hub.attach(0, sender.clone());
        let task = tokio::spawn(status_pings(hub.clone()));
        assert_eq!(
            next_ping(&mut pings).await,
            Duration::ZERO,
            "asked as the first connection is up"
        );
        answer(&hub, 1);
        // The first answer counted one server connection: asked every second…
        assert_eq!(next_ping(&mut pings).await, REMOVING_STATUS_INTERVAL);
        answer(&hub, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // … and at once when the last of them comes up.
        for slot in 1..slots {
            hub.attach(slot, sender.clone());
        }
        assert_eq!(next_ping(&mut pings).await, Duration::ZERO);
        answer(&hub, i32::try_from(slots).unwrap());
        // That answer is whole: after one more ping the status is asked every 10 s.
        assert_eq!(next_ping(&mut pings).await, REMOVING_STATUS_INTERVAL);
        answer(&hub, i32::try_from(slots).unwrap());
        assert_eq!(next_ping(&mut pings).await, STATUS_INTERVAL);
        hub.stopping.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_connection_that_never_comes_up_stops_the_fast_status_pings_after_ten() {
        let endpoints = endpoints(None);
        let hub = endpoints.hubs()[0].clone();
        let (sender, mut pings) = queue::channel(64);
        hub.attach(0, sender);
        let task = tokio::spawn(status_pings(hub.clone()));
        let mut intervals = Vec::new();
        for _ in 0..=STARTUP_STATUS_PINGS {
            intervals.push(next_ping(&mut pings).await);
            answer(&hub, 1);
        }
        let fast = usize::try_from(STARTUP_STATUS_PINGS).unwrap();
        assert_eq!(intervals[0], Duration::ZERO);
        assert!(
            intervals[1..fast + 1].iter().all(|i| *i == REMOVING_STATUS_INTERVAL),
            "{intervals:?}"
        );
        assert_eq!(next_ping(&mut pings).await, STATUS_INTERVAL);
        hub.stopping.cancel();
        task.await.unwrap();
    }

    #[test]
    fn negotiate_takes_online_primaries_in_service_and_messages_go_to_every_online_endpoint() {
        let endpoints = endpoints(None);
        let hubs = endpoints.hubs();
        let target = |e: &HubEndpoints| {
            e.negotiate_target(&request(""))
                .map(|hub| hub.endpoint.name().to_owned())
        };
        assert_eq!(target(&endpoints), None, "nothing online");
        assert!(endpoints.message_targets(&Target::All).is_empty());
        let _backup = online(&hubs[2]);
        assert_eq!(
            target(&endpoints).as_deref(),
            Some("backup"),
            "a secondary when no primary is online"
        );
        let _west = online(&hubs[1]);
        for _ in 0..20 {
            assert_eq!(target(&endpoints).as_deref(), Some("west"));
        }
        assert_eq!(names(&endpoints.message_targets(&Target::All)), ["west", "backup"]);
        // An endpoint being added or removed takes no clients, and still gets messages.
        let _east = online(&hubs[0]);
        hubs[1].set_phase(Phase::Removing);
        hubs[0].set_phase(Phase::Adding);
        assert_eq!(target(&endpoints).as_deref(), Some("backup"));
        assert_eq!(
            names(&endpoints.message_targets(&Target::Group("g".into()))),
            ["east", "west", "backup"]
        );
        hubs[0].set_phase(Phase::Serving);
        assert_eq!(target(&endpoints).as_deref(), Some("east"));
        // Gone offline: neither.
        hubs[0].detach(0);
        assert_eq!(target(&endpoints).as_deref(), Some("backup"));
        assert_eq!(names(&endpoints.message_targets(&Target::All)), ["west", "backup"]);
    }

    /// Negotiate by `?region=`, and messages to groups only where the group's name says.
    struct ByRegion;

    impl EndpointRouter for ByRegion {
        fn negotiate_endpoint<'e>(
            &self,
            request: &RequestInfo,
            endpoints: &'e [EndpointStatus<'e>],
        ) -> Option<&'e EndpointStatus<'e>> {
            let wanted = request.query("region")?;
            endpoints.iter().find(|e| e.name() == wanted)
        }

        fn message_endpoints<'e>(
            &self,
            target: &Target,
            endpoints: &'e [EndpointStatus<'e>],
        ) -> Vec<&'e EndpointStatus<'e>> {
            match target {
                Target::Group(group) => endpoints.iter().filter(|e| group.starts_with(e.name())).collect(),
                _ => super::super::online_endpoints(endpoints),
            }
        }
    }

    #[test]
    fn a_router_of_the_app_chooses_by_request_and_by_target_among_online_endpoints() {
        let endpoints = endpoints(Some(Arc::new(ByRegion)));
        let hubs = endpoints.hubs();
        let _east = online(&hubs[0]);
        let _backup = online(&hubs[2]);
        let target = |query: &str| {
            endpoints
                .negotiate_target(&request(query))
                .map(|hub| hub.endpoint.name().to_owned())
        };
        assert_eq!(target("region=east").as_deref(), Some("east"));
        assert_eq!(target("region=backup").as_deref(), Some("backup"));
        assert_eq!(target("region=west"), None, "its choice is offline");
        assert_eq!(target(""), None);
        assert_eq!(
            names(&endpoints.message_targets(&Target::Group("east-1".into()))),
            ["east"]
        );
        assert!(
            endpoints.message_targets(&Target::Group("west-1".into())).is_empty(),
            "offline"
        );
        assert_eq!(names(&endpoints.message_targets(&Target::All)), ["east", "backup"]);
    }
}
