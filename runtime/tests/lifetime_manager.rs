//! A lifetime manager written outside the crate, against the public seam only: it wraps the
//! self-hosted manager (as a backplane keeps its own connections) and records what passes
//! through it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use switchboard::lifetime::{ConnectionHandle, LifetimeManager, LocalLifetimeManager, OutboundMessage, Target};
use switchboard::protocol::Protocol;
use switchboard::protocol::membership::{Excluded, Recipients};
use switchboard::{HubError, Target as RootTarget};

/// Forwards everything to the local manager and remembers each send's target.
#[derive(Default)]
struct Recording {
    local: LocalLifetimeManager,
    sent: Mutex<Vec<Target>>,
    joined: Mutex<Vec<(String, String)>>,
}

impl LifetimeManager for Recording {
    fn on_connected(&self, connection: &ConnectionHandle) {
        self.local.on_connected(connection);
    }

    fn on_disconnected(&self, connection: &ConnectionHandle) {
        self.local.on_disconnected(connection);
    }

    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        self.sent.lock().unwrap().push(target.clone());
        self.local.send(target, message, origin)
    }

    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        self.joined
            .lock()
            .unwrap()
            .push((connection_id.to_owned(), group.to_owned()));
        self.local.add_to_group(connection_id, group)
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        // A manager that talks to a peer owns what its future needs.
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move {
            self.joined
                .lock()
                .unwrap()
                .retain(|(c, g)| !(*c == connection_id && *g == group));
            Ok(())
        }
        .boxed()
    }

    fn connection(&self, connection_id: &str) -> Option<ConnectionHandle> {
        self.local.connection(connection_id)
    }
}

/// What a manager outside the crate makes of a target: every kind resolves to the index's
/// recipients, and a match needs a wildcard arm (the type is non-exhaustive).
fn describe(target: &Target) -> &'static str {
    match target {
        Target::All => "all",
        Target::Group(_) => "group",
        _ => "other",
    }
}

#[tokio::test]
async fn a_manager_outside_the_crate_serves_as_the_seam() {
    let recording = Arc::new(Recording::default());
    let manager: Arc<dyn LifetimeManager> = recording.clone();

    let message = OutboundMessage::invocation("notify", ("hello",));
    manager.send(Target::All, message.clone(), None).await.unwrap();
    manager
        .send(Target::Group("fans".into()), message.clone(), Some("c1"))
        .await
        .unwrap();
    manager.add_to_group("c1", "fans").await.unwrap();
    manager.remove_from_group("c1", "fans").await.unwrap();
    assert!(manager.connection("c1").is_none());

    let sent = recording.sent.lock().unwrap().clone();
    assert_eq!(sent, [RootTarget::All, Target::Group("fans".into())]);
    assert_eq!(sent.iter().map(describe).collect::<Vec<_>>(), ["all", "group"]);
    assert!(recording.joined.lock().unwrap().is_empty());

    // The default `invoke` reaches only connections of this process.
    let error = manager
        .invoke("c1", message.clone(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        format!("{error:?}").contains("Connection 'c1' does not exist."),
        "{error:?}"
    );

    // The message is encoded once per protocol: both frames are the same bytes each time.
    let json = message.frame(Protocol::Json).unwrap();
    assert_eq!(json, message.frame(Protocol::Json).unwrap());
    assert!(json.ends_with(&[0x1e]));
    assert_ne!(json, message.frame(Protocol::MessagePack).unwrap());
}

#[test]
fn targets_resolve_to_the_index_recipients() {
    let ids = vec!["a".to_owned(), "b".to_owned()];
    let except = Target::GroupExcept("fans".into(), ids.clone());
    let (recipients, excluded) = except.recipients();
    assert_eq!(recipients, Recipients::Groups(&["fans".to_owned()]));
    assert_eq!(excluded, Excluded::connections(&ids));
    let all_except = Target::AllExcept(ids.clone());
    let (recipients, excluded) = all_except.recipients();
    assert_eq!((recipients, excluded.connections), (Recipients::All, &ids[..]));
    let users = Target::Users(ids.clone());
    let (recipients, excluded) = users.recipients();
    assert_eq!((recipients, excluded), (Recipients::Users(&ids), Excluded::NONE));
}

struct Room;

impl switchboard::Hub for Room {
    type Client = switchboard::Untyped;
    fn methods(_: &mut switchboard::Methods<Self>) {}
}

#[tokio::test]
async fn lifetime_manager_the_app_installs_carries_its_hubs_sends() {
    let recording = Arc::new(Recording::default());
    let names = Arc::new(Mutex::new(Vec::new()));
    let app = {
        let (recording, names) = (recording.clone(), names.clone());
        switchboard::Switchboard::builder()
            .hub("/room", Room)
            .hub("/room-again", Room)
            .lifetime_manager(move |hub| {
                names.lock().unwrap().push(hub.to_owned());
                recording.clone() as Arc<dyn LifetimeManager>
            })
            .build()
            .unwrap()
    };
    // One manager per hub type, however many paths it is mapped at.
    assert_eq!(*names.lock().unwrap(), ["Room"]);
    let handle = app.hub_handle::<Room>().unwrap();
    handle.clients().all().send("Notify", ("hi",)).await.unwrap();
    handle.clients().group("fans").send("Notify", ("hi",)).await.unwrap();
    assert_eq!(
        *recording.sent.lock().unwrap(),
        [Target::All, Target::Group("fans".into())]
    );
    // The trait's default existence check knows this process's connections only.
    assert!(!handle.connection_exists("nobody").await.unwrap());
    let error = handle.user_exists("nobody").await.unwrap_err();
    assert_eq!(
        error.message(),
        "This lifetime manager cannot tell whether a user or a group exists."
    );
}

#[test]
fn lifetime_manager_and_service_mode_exclude_each_other() {
    let error = switchboard::Switchboard::builder()
        .hub("/room", Room)
        .lifetime_manager(|_| Arc::new(LocalLifetimeManager::new()) as Arc<dyn LifetimeManager>)
        .with_service(switchboard::service::ServiceOptions::default())
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "service mode and a lifetime manager of the app's own exclude each other"
    );
}
