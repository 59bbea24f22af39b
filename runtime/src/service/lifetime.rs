//! Service mode's lifetime manager, an implementation of the public
//! [`LifetimeManager`] seam: sends become service messages that the service fans out,
//! carrying one payload per protocol; group changes are acknowledged by the service. The
//! connections it knows here are the clients tunnelled to this app server.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::future::{BoxFuture, FutureExt};

use super::hub::{ACK_TIMEOUT, ServiceHub};
use crate::HubError;
use crate::lifetime::{ConnectionHandle, LifetimeManager, OutboundMessage, Target};
use crate::protocol::Protocol;
use crate::protocol::service::link::frame;
use crate::protocol::service::{
    AckStatus, BroadcastData, GroupBroadcastData, JoinGroupWithAck, LeaveGroupWithAck, MultiConnectionData,
    MultiGroupBroadcastData, MultiUserData, Payloads, ServiceMessage, UserData,
};

/// The lifetime manager of a hub in service mode. Client results reach the clients tunnelled
/// to this app server (the trait's default `invoke`): a client of another app server answers
/// through its own.
pub(crate) struct ServiceLifetimeManager {
    pub hub: Arc<ServiceHub>,
    local: RwLock<HashMap<Arc<str>, ConnectionHandle>>,
}

impl ServiceLifetimeManager {
    pub fn new(hub: Arc<ServiceHub>) -> Self {
        Self {
            hub,
            local: RwLock::new(HashMap::new()),
        }
    }

    fn not_active() -> HubError {
        HubError::exception(
            "ServiceConnectionNotActiveException",
            "The connection is not active, data cannot be sent to the service.",
        )
    }

    async fn write(&self, message: ServiceMessage, origin: Option<&str>) -> Result<(), HubError> {
        let writer = self.hub.writer(origin).ok_or_else(Self::not_active)?;
        writer.send(frame(&message)).await.map_err(|_| Self::not_active())
    }

    /// Writes an acknowledged message and waits for the service's answer.
    async fn write_with_ack(
        &self,
        build: impl FnOnce(i32) -> ServiceMessage,
        origin: Option<&str>,
    ) -> Result<AckStatus, HubError> {
        let (id, answer) = self.hub.acks.expect();
        if let Err(error) = self.write(build(id), origin).await {
            self.hub.acks.forget(id);
            return Err(error);
        }
        match tokio::time::timeout(ACK_TIMEOUT, answer).await {
            Ok(Ok(status)) => Ok(status),
            _ => {
                self.hub.acks.forget(id);
                Err(HubError::exception(
                    "TimeoutException",
                    format!("The service did not acknowledge within {} s.", ACK_TIMEOUT.as_secs()),
                ))
            }
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
            self.write(message, origin.as_deref()).await
        }
        .boxed()
    }

    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move {
            let origin = connection_id.clone();
            let build = |ack_id| {
                ServiceMessage::JoinGroupWithAck(JoinGroupWithAck {
                    connection_id,
                    group,
                    ack_id,
                    ..JoinGroupWithAck::default()
                })
            };
            self.write_with_ack(build, Some(&origin)).await.map(|_| ())
        }
        .boxed()
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move {
            let origin = connection_id.clone();
            let build = |ack_id| {
                ServiceMessage::LeaveGroupWithAck(LeaveGroupWithAck {
                    connection_id,
                    group: Some(group),
                    ack_id,
                    ..LeaveGroupWithAck::default()
                })
            };
            self.write_with_ack(build, Some(&origin)).await.map(|_| ())
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
}
