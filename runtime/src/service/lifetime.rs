//! Service mode's lifetime manager, an implementation of the public
//! [`LifetimeManager`] seam: sends become service messages that the service fans out,
//! carrying one payload per protocol; group changes are acknowledged by the service. The
//! connections it knows here are the clients tunnelled to this app server.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt, join_all};
use futures_util::stream::FuturesUnordered;

use super::hub::{ACK_TIMEOUT, ServiceHub};
use super::hub_endpoints::HubEndpoints;
use crate::HubError;
use crate::lifetime::{ConnectionHandle, LifetimeManager, OutboundMessage, Presence, Target};
use crate::protocol::Protocol;
use crate::protocol::service::link::frame;
use crate::protocol::service::{
    AckStatus, BroadcastData, CheckConnectionExistenceWithAck, CheckGroupExistenceWithAck, CheckUserExistenceWithAck,
    GroupBroadcastData, JoinGroupWithAck, LeaveGroupWithAck, MultiConnectionData, MultiGroupBroadcastData,
    MultiUserData, Payloads, ServiceMessage, UserData,
};

/// The lifetime manager of a hub in service mode. Each message goes to the endpoints the
/// router picks (by default every online one), framed once. Client results reach the clients
/// tunnelled to this app server (the trait's default `invoke`): a client of another app
/// server answers through its own.
pub(crate) struct ServiceLifetimeManager {
    pub endpoints: Arc<HubEndpoints>,
    local: RwLock<HashMap<Arc<str>, ConnectionHandle>>,
}

impl ServiceLifetimeManager {
    pub fn new(endpoints: Arc<HubEndpoints>) -> Self {
        Self {
            endpoints,
            local: RwLock::new(HashMap::new()),
        }
    }

    fn not_active() -> HubError {
        HubError::exception(
            "ServiceConnectionNotActiveException",
            "The connection is not active, data cannot be sent to the service.",
        )
    }

    /// Writes `message` to the endpoints a target goes to: done when one of them took it.
    async fn write(
        &self,
        hubs: &[Arc<ServiceHub>],
        message: &ServiceMessage,
        origin: Option<&str>,
    ) -> Result<(), HubError> {
        let bytes = frame(message);
        let write_to = |hub: &Arc<ServiceHub>, bytes: Bytes| {
            let writer = hub.writer(origin);
            async move {
                let writer = writer.ok_or_else(Self::not_active)?;
                writer.send(bytes).await.map_err(|_| Self::not_active())
            }
        };
        match hubs {
            [] => Err(Self::not_active()),
            [hub] => write_to(hub, bytes).await,
            hubs => {
                let results = join_all(hubs.iter().map(|hub| write_to(hub, bytes.clone()))).await;
                if results.iter().any(Result::is_ok) {
                    Ok(())
                } else {
                    Err(Self::not_active())
                }
            }
        }
    }

    /// Writes an acknowledged message to every endpoint `target` goes to and combines their
    /// answers as the Azure SDK does: for a connection, done on the first `Ok` (the endpoint
    /// that holds it); for a user or a group (which may be at several endpoints), once all
    /// have answered, `Ok` if any said so. An error only when none answered.
    async fn write_with_ack(
        &self,
        target: &Target,
        origin: Option<&str>,
        build: impl Fn(i32) -> ServiceMessage,
    ) -> Result<AckStatus, HubError> {
        let hubs = self.endpoints.message_targets(target);
        if hubs.is_empty() {
            return Err(Self::not_active());
        }
        let first_ok_answers = matches!(target, Target::Connection(_));
        let mut answers: FuturesUnordered<_> = hubs.iter().map(|hub| acknowledged(hub, &build, origin)).collect();
        let mut answered = None;
        let mut failed = None;
        while let Some(answer) = answers.next().await {
            match answer {
                Ok(AckStatus::Ok) if first_ok_answers => return Ok(AckStatus::Ok),
                Ok(status) if answered != Some(AckStatus::Ok) => answered = Some(status),
                Ok(_) => {}
                Err(error) => failed = Some(error),
            }
        }
        match (answered, failed) {
            (Some(status), _) => Ok(status),
            (None, Some(error)) => Err(error),
            (None, None) => Err(Self::not_active()),
        }
    }
}

/// Writes an acknowledged message to one endpoint and waits for its answer.
async fn acknowledged(
    hub: &Arc<ServiceHub>,
    build: &impl Fn(i32) -> ServiceMessage,
    origin: Option<&str>,
) -> Result<AckStatus, HubError> {
    let (id, answer) = hub.acks.expect();
    let sent = match hub.writer(origin) {
        Some(writer) => writer.send(frame(&build(id))).await.is_ok(),
        None => false,
    };
    if !sent {
        hub.acks.forget(id);
        return Err(ServiceLifetimeManager::not_active());
    }
    match tokio::time::timeout(ACK_TIMEOUT, answer).await {
        Ok(Ok(status)) => Ok(status),
        _ => {
            hub.acks.forget(id);
            Err(HubError::exception(
                "TimeoutException",
                format!("The service did not acknowledge within {} s.", ACK_TIMEOUT.as_secs()),
            ))
        }
    }
}

fn payloads(message: &OutboundMessage) -> Result<Payloads, HubError> {
    Ok(vec![
        ("json".to_owned(), message.frame(Protocol::Json)?),
        ("messagepack".to_owned(), message.frame(Protocol::MessagePack)?),
    ])
}

impl LifetimeManager for ServiceLifetimeManager {
    fn on_connected(&self, connection: &ConnectionHandle) {
        self.local
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection.connection().id().clone(), connection.clone());
    }

    fn on_disconnected(&self, connection: &ConnectionHandle) {
        self.local
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(connection.id());
    }

    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        let origin = origin.map(str::to_owned);
        async move {
            let payloads = payloads(&message)?;
            let hubs = self.endpoints.message_targets(&target);
            let message = match target {
                Target::All => ServiceMessage::BroadcastData(BroadcastData {
                    payloads,
                    ..BroadcastData::default()
                }),
                Target::AllExcept(excluded) => ServiceMessage::BroadcastData(BroadcastData {
                    excluded,
                    payloads,
                    ..BroadcastData::default()
                }),
                Target::Connection(id) => ServiceMessage::MultiConnectionData(MultiConnectionData {
                    connection_ids: vec![id],
                    payloads,
                    ..MultiConnectionData::default()
                }),
                Target::Connections(connection_ids) => ServiceMessage::MultiConnectionData(MultiConnectionData {
                    connection_ids,
                    payloads,
                    ..MultiConnectionData::default()
                }),
                Target::Group(group) => ServiceMessage::GroupBroadcastData(GroupBroadcastData {
                    group,
                    payloads,
                    ..GroupBroadcastData::default()
                }),
                Target::GroupExcept(group, excluded) => ServiceMessage::GroupBroadcastData(GroupBroadcastData {
                    group,
                    excluded,
                    payloads,
                    ..GroupBroadcastData::default()
                }),
                Target::Groups(groups) => ServiceMessage::MultiGroupBroadcastData(MultiGroupBroadcastData {
                    groups,
                    payloads,
                    ..MultiGroupBroadcastData::default()
                }),
                Target::User(user_id) => ServiceMessage::UserData(UserData {
                    user_id,
                    payloads,
                    ..UserData::default()
                }),
                Target::Users(user_ids) => ServiceMessage::MultiUserData(MultiUserData {
                    user_ids,
                    payloads,
                    ..MultiUserData::default()
                }),
            };
            self.write(&hubs, &message, origin.as_deref()).await
        }
        .boxed()
    }

    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move {
            let build = |ack_id| {
                ServiceMessage::JoinGroupWithAck(JoinGroupWithAck {
                    connection_id: connection_id.clone(),
                    group: group.clone(),
                    ack_id,
                    ..JoinGroupWithAck::default()
                })
            };
            let target = Target::Connection(connection_id.clone());
            self.write_with_ack(&target, Some(&connection_id), build)
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move {
            let build = |ack_id| {
                ServiceMessage::LeaveGroupWithAck(LeaveGroupWithAck {
                    connection_id: connection_id.clone(),
                    group: Some(group.clone()),
                    ack_id,
                    ..LeaveGroupWithAck::default()
                })
            };
            let target = Target::Connection(connection_id.clone());
            self.write_with_ack(&target, Some(&connection_id), build)
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn connection(&self, connection_id: &str) -> Option<ConnectionHandle> {
        self.local
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(connection_id)
            .cloned()
    }

    /// Asks the service (every endpoint the target goes to) with an acknowledged check.
    fn exists(&self, what: Presence) -> BoxFuture<'_, Result<bool, HubError>> {
        async move {
            let status = match what {
                Presence::Connection(connection_id) => {
                    let target = Target::Connection(connection_id.clone());
                    let build = |ack_id| {
                        ServiceMessage::CheckConnectionExistenceWithAck(CheckConnectionExistenceWithAck {
                            connection_id: connection_id.clone(),
                            ack_id,
                            ..CheckConnectionExistenceWithAck::default()
                        })
                    };
                    self.write_with_ack(&target, None, build).await?
                }
                Presence::User(user_id) => {
                    let target = Target::User(user_id.clone());
                    let build = |ack_id| {
                        ServiceMessage::CheckUserExistenceWithAck(CheckUserExistenceWithAck {
                            user_id: user_id.clone(),
                            ack_id,
                            ..CheckUserExistenceWithAck::default()
                        })
                    };
                    self.write_with_ack(&target, None, build).await?
                }
                Presence::Group(group) => {
                    let target = Target::Group(group.clone());
                    let build = |ack_id| {
                        ServiceMessage::CheckGroupExistenceWithAck(CheckGroupExistenceWithAck {
                            group: group.clone(),
                            ack_id,
                            ..CheckGroupExistenceWithAck::default()
                        })
                    };
                    self.write_with_ack(&target, None, build).await?
                }
            };
            Ok(status == AckStatus::Ok)
        }
        .boxed()
    }
}
