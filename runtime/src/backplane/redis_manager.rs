//! The Redis backplane's lifetime manager: the hub's connections on this server in a
//! membership index, and every send published on Redis on ASP.NET Core's channels, so that
//! each server (this one included) delivers to the connections it holds.
//!
//! One Redis connection subscribes (to `all`, the group commands, this server's acks and
//! results, and the connection, user and group channels of the connections here), one
//! publishes. The subscriptions wanted are state, not a queue: a task brings Redis in line
//! with them after each change and again, from scratch, after Redis comes back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::{Notify, OnceCell, oneshot};

use super::channels::{Channel, Channels};
use super::envelope::{self, GroupAction, GroupCommand, Invocation, RemoteCompletion};
use crate::HubError;
use crate::lifetime::{ConnectionHandle, LifetimeManager, OutboundMessage, Presence, Target};
use crate::protocol::membership::{Excluded, Membership, Recipients};
use crate::protocol::{Completion, CompletionResult, HubMessage, Protocol};

/// How long a group change for a connection on another server waits for its ack (as
/// ASP.NET Core's backplane).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a group change waits for this server's subscription to the group.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a client result asked for by another server is awaited here.
const REMOTE_RESULT_LIMIT: Duration = Duration::from_secs(600);

/// The manager of one hub type.
pub(crate) struct RedisLifetimeManager {
    inner: Arc<Inner>,
}

struct Inner {
    channels: Channels,
    server_name: String,
    client: redis::Client,
    state: Mutex<State>,
    /// Woken when the wanted subscriptions change.
    wanted_changed: Arc<Notify>,
    /// Woken when the subscriptions in force change.
    subscribed: Notify,
    started: std::sync::Once,
    publisher: OnceCell<redis::aio::ConnectionManager>,
    next_ack: AtomicI32,
    acks: Mutex<HashMap<i32, oneshot::Sender<()>>>,
    next_result: AtomicU64,
    results: Mutex<HashMap<String, oneshot::Sender<CompletionResult>>>,
}

#[derive(Default)]
struct State {
    members: Membership<ConnectionHandle>,
    /// The channels this server should be subscribed to.
    wanted: HashSet<String>,
    /// The channels it is subscribed to now.
    active: HashSet<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisLifetimeManager {
    pub fn new(client: redis::Client, channel_prefix: String, server_name: String) -> Self {
        let channels = Channels::new(channel_prefix);
        let mut state = State::default();
        state.wanted.extend([
            channels.all(),
            channels.group_management(),
            channels.ack(&server_name),
            channels.results(&server_name),
        ]);
        Self {
            inner: Arc::new(Inner {
                channels,
                server_name,
                client,
                state: Mutex::new(state),
                wanted_changed: Arc::new(Notify::new()),
                subscribed: Notify::new(),
                started: std::sync::Once::new(),
                publisher: OnceCell::new(),
                next_ack: AtomicI32::new(0),
                acks: Mutex::new(HashMap::new()),
                next_result: AtomicU64::new(0),
                results: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts the subscribing task, once, from inside the runtime.
    fn start(&self) {
        self.inner.started.call_once(|| {
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(subscriber(
                    Arc::downgrade(&self.inner),
                    self.inner.wanted_changed.clone(),
                ));
            }
        });
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn want(&self, state: &mut State, channel: String) {
        if state.wanted.insert(channel) {
            self.wanted_changed.notify_one();
        }
    }

    fn unwant(&self, state: &mut State, channel: &str) {
        if state.wanted.remove(channel) {
            self.wanted_changed.notify_one();
        }
    }

    /// Resolves once the subscription to `channel` is in force (or after a while).
    async fn until_subscribed(&self, channel: &str) {
        let wait = async {
            loop {
                let notified = self.subscribed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.state().active.contains(channel) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(SUBSCRIBE_TIMEOUT, wait).await.is_err() {
            tracing::warn!(channel, "the Redis subscription is not in force yet; going on");
        }
    }

    async fn publish(&self, channel: &str, bytes: Vec<u8>) -> Result<i64, HubError> {
        let unavailable = |e: redis::RedisError| {
            HubError::exception("RedisConnectionException", format!("Redis is unavailable: {e}"))
        };
        let publisher = self
            .publisher
            .get_or_try_init(|| self.client.get_connection_manager())
            .await
            .map_err(unavailable)?;
        let mut publisher = publisher.clone();
        let publish = redis::cmd("PUBLISH").arg(channel).arg(bytes).to_owned();
        match publish.query_async::<i64>(&mut publisher).await {
            // The connection broke since the last send (Redis restarted): the manager has
            // reconnected by the next command, which is this one again.
            Err(error) if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() => {
                publish.query_async::<i64>(&mut publisher).await.map_err(unavailable)
            }
            other => other.map_err(unavailable),
        }
    }

    /// Adds or removes a connection of this server to or from a group, and the group's
    /// subscription with it; `false` when the connection is not here.
    fn apply_group(&self, action: GroupAction, connection_id: &str, group: &str) -> bool {
        let mut state = self.state();
        match action {
            GroupAction::Add => {
                if !state.members.join_group(connection_id, group) {
                    return state.members.contains_connection(connection_id);
                }
                self.want(&mut state, self.channels.group(group));
                true
            }
            GroupAction::Remove => {
                if !state.members.contains_connection(connection_id) {
                    return false;
                }
                state.members.leave_group(connection_id, group);
                if !state.members.contains_group(group) {
                    let channel = self.channels.group(group);
                    self.unwant(&mut state, &channel);
                }
                true
            }
        }
    }

    /// A group change: here when the connection is, else by every server through Redis, the
    /// one holding the connection acknowledging it.
    async fn change_group(&self, action: GroupAction, connection_id: &str, group: &str) -> Result<(), HubError> {
        if self.apply_group(action, connection_id, group) {
            if action == GroupAction::Add {
                self.until_subscribed(&self.channels.group(group)).await;
            }
            return Ok(());
        }
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & i32::MAX;
        let (sender, acked) = oneshot::channel();
        lock(&self.acks).insert(id, sender);
        let command = GroupCommand {
            id,
            server_name: self.server_name.clone(),
            action,
            group: group.to_owned(),
            connection_id: connection_id.to_owned(),
        };
        let published = self.publish(&self.channels.group_management(), command.encode()).await;
        let outcome = match published {
            Err(error) => Err(error),
            Ok(_) => match tokio::time::timeout(ACK_TIMEOUT, acked).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(HubError::exception("TaskCanceledException", "A task was canceled.")),
            },
        };
        lock(&self.acks).remove(&id);
        outcome
    }

    /// Queues an invocation's bytes on each connection here that `recipients` names.
    fn deliver(&self, recipients: Recipients<'_>, invocation: &Invocation) {
        let excluded = Excluded::connections(&invocation.excluded);
        self.state().members.for_each(recipients, excluded, |id, connection| {
            match invocation.payload(connection.protocol()) {
                Some(bytes) => connection.send_frame(bytes.clone()),
                None => tracing::debug!(
                    connection = id,
                    "a backplane message without this connection's protocol"
                ),
            }
        });
    }

    /// What arrived on a channel.
    fn received(self: &Arc<Self>, channel: &str, data: Bytes) {
        let Some(kind) = self.channels.parse(channel, &self.server_name) else {
            return;
        };
        let dropped = |error: envelope::EnvelopeError| {
            tracing::warn!(channel, %error, "dropped a backplane message that does not parse");
        };
        match kind {
            Channel::All | Channel::Group(_) | Channel::User(_) | Channel::Connection(_) => {
                let invocation = match Invocation::decode(&data) {
                    Ok(invocation) => invocation,
                    Err(error) => return dropped(error),
                };
                match kind {
                    Channel::All => self.deliver(Recipients::All, &invocation),
                    Channel::Group(group) => self.deliver(Recipients::Groups(&[group.to_owned()]), &invocation),
                    Channel::User(user) => self.deliver(Recipients::Users(&[user.to_owned()]), &invocation),
                    Channel::Connection(id) => match &invocation.result {
                        Some((invocation_id, return_channel)) => {
                            self.answer_remote_invocation(id, &invocation, invocation_id, return_channel)
                        }
                        None => self.deliver(Recipients::Connections(&[id.to_owned()]), &invocation),
                    },
                    _ => {}
                }
            }
            Channel::GroupManagement => {
                let command = match GroupCommand::decode(&data) {
                    Ok(command) => command,
                    Err(error) => return dropped(error),
                };
                if self.apply_group(command.action, &command.connection_id, &command.group) {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let channel = this.channels.ack(&command.server_name);
                        if let Err(error) = this.publish(&channel, envelope::encode_ack(command.id)).await {
                            tracing::warn!(%error, "could not acknowledge a group command");
                        }
                    });
                }
            }
            Channel::Ack => match envelope::decode_ack(&data) {
                Ok(id) => {
                    if let Some(sender) = lock(&self.acks).remove(&id) {
                        let _ = sender.send(());
                    }
                }
                Err(error) => dropped(error),
            },
            Channel::Results => {
                let completion = match RemoteCompletion::decode(&data) {
                    Ok(completion) => completion,
                    Err(error) => return dropped(error),
                };
                match parse_completion(&completion) {
                    Ok(done) => {
                        if let Some(sender) = lock(&self.results).remove(&done.invocation_id) {
                            let _ = sender.send(done.result);
                        }
                    }
                    Err(error) => dropped(error),
                }
            }
        }
    }

    /// Another server asks a connection here for a client result: the invocation goes to the
    /// client with the asker's id, and its Completion back on the asker's channel.
    fn answer_remote_invocation(
        self: &Arc<Self>,
        connection_id: &str,
        invocation: &Invocation,
        invocation_id: &str,
        return_channel: &str,
    ) {
        let Some(handle) = self.state().members.get(connection_id).cloned() else {
            return;
        };
        let protocol = handle.protocol();
        let Some(frame) = invocation.payload(protocol).cloned() else {
            return;
        };
        let connection = handle.connection().clone();
        let (sender, answer) = oneshot::channel();
        connection.invocations().expect_result(invocation_id.to_owned(), sender);
        let (this, invocation_id, return_channel) = (self.clone(), invocation_id.to_owned(), return_channel.to_owned());
        tokio::spawn(async move {
            let result = if connection.send_frame_wait(frame).await {
                tokio::select! {
                    answer = answer => answer.unwrap_or_else(|_| CompletionResult::Error("Connection disconnected.".into())),
                    _ = connection.closing().cancelled() => CompletionResult::Error("Connection disconnected.".into()),
                    _ = tokio::time::sleep(REMOTE_RESULT_LIMIT) => CompletionResult::Error("The client did not answer in time.".into()),
                }
            } else {
                CompletionResult::Error("Connection disconnected.".into())
            };
            connection.invocations().forget_result(&invocation_id);
            let completion = HubMessage::Completion(Completion {
                headers: Default::default(),
                invocation_id,
                result,
            });
            let mut message = Vec::new();
            if let Err(error) = protocol.write_message(&mut message, &completion) {
                tracing::warn!(%error, "could not encode a client result for another server");
                return;
            }
            let reply = RemoteCompletion {
                protocol: envelope::protocol_name(protocol).to_owned(),
                message: Bytes::from(message),
            };
            if let Err(error) = this.publish(&return_channel, reply.encode()).await {
                tracing::warn!(%error, "could not return a client result to another server");
            }
        });
    }
}

/// The Completion inside a returned client result.
fn parse_completion(completion: &RemoteCompletion) -> Result<Completion, envelope::EnvelopeError> {
    let bad = |what: &str| envelope::EnvelopeError::from_text(what);
    let protocol = envelope::protocol_of(&completion.protocol).ok_or_else(|| bad("an unknown hub protocol"))?;
    let mut buffer = bytes::BytesMut::from(&completion.message[..]);
    let record = protocol
        .split_record(&mut buffer, None)
        .map_err(|e| bad(&e.to_string()))?
        .ok_or_else(|| bad("an incomplete Completion"))?;
    match protocol.parse_record(record) {
        Ok(Some(HubMessage::Completion(done))) => Ok(done),
        Ok(_) => Err(bad("not a Completion")),
        Err(error) => Err(bad(&error.to_string())),
    }
}

/// Keeps Redis subscribed to what the manager wants; reconnects (and subscribes again to
/// everything) after Redis goes away. Ends when the manager is dropped.
async fn subscriber(inner: Weak<Inner>, wanted_changed: Arc<Notify>) {
    let mut attempt = 0u32;
    loop {
        let Some(this) = inner.upgrade() else { return };
        let client = this.client.clone();
        drop(this);
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                if attempt > 0 {
                    tracing::info!("connected to Redis again; subscribing again");
                }
                attempt = 0;
                let (mut sink, mut stream) = pubsub.split();
                let mut active: HashSet<String> = HashSet::new();
                'connected: loop {
                    let Some(this) = inner.upgrade() else { return };
                    let wanted = this.state().wanted.clone();
                    drop(this);
                    for channel in wanted.difference(&active).cloned().collect::<Vec<_>>() {
                        if sink.subscribe(&channel).await.is_err() {
                            break 'connected;
                        }
                        active.insert(channel);
                    }
                    for channel in active.difference(&wanted).cloned().collect::<Vec<_>>() {
                        if sink.unsubscribe(&channel).await.is_err() {
                            break 'connected;
                        }
                        active.remove(&channel);
                    }
                    if let Some(this) = inner.upgrade() {
                        this.state().active = active.clone();
                        this.subscribed.notify_waiters();
                    }
                    tokio::select! {
                        () = wanted_changed.notified() => {}
                        message = stream.next() => match message {
                            Some(message) => {
                                let Some(this) = inner.upgrade() else { return };
                                let data = Bytes::copy_from_slice(message.get_payload_bytes());
                                this.received(message.get_channel_name(), data);
                            }
                            None => break 'connected,
                        },
                    }
                }
                tracing::warn!("lost the Redis connection of the backplane; sends fail until it is back");
            }
            Err(error) => {
                if attempt == 0 {
                    tracing::warn!(%error, "cannot connect to Redis; retrying");
                }
            }
        }
        if let Some(this) = inner.upgrade() {
            this.state().active.clear();
        }
        let delay = Duration::from_millis(100u64 << attempt.min(5)).min(Duration::from_secs(2));
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

fn payloads(message: &OutboundMessage, invocation_id: Option<&str>) -> Result<Vec<(String, Bytes)>, HubError> {
    [Protocol::Json, Protocol::MessagePack]
        .into_iter()
        .map(|protocol| {
            let bytes = match invocation_id {
                Some(id) => message.frame_with_id(protocol, id)?,
                None => message.frame(protocol)?,
            };
            Ok((envelope::protocol_name(protocol).to_owned(), bytes))
        })
        .collect()
}

impl LifetimeManager for RedisLifetimeManager {
    fn on_connected(&self, connection: &ConnectionHandle) {
        self.start();
        let inner = &self.inner;
        let id = connection.connection().id().clone();
        let mut state = inner.state();
        state
            .members
            .add_connection(id.clone(), connection.user_id(), connection.clone());
        inner.want(&mut state, inner.channels.connection(&id));
        if let Some(user) = connection.user_id() {
            inner.want(&mut state, inner.channels.user(user));
        }
    }

    fn on_disconnected(&self, connection: &ConnectionHandle) {
        let inner = &self.inner;
        let mut state = inner.state();
        let groups: Vec<String> = state.members.groups_of(connection.id()).map(str::to_owned).collect();
        let user = state.members.user_of(connection.id()).map(str::to_owned);
        if state.members.remove_connection(connection.id()).is_none() {
            return;
        }
        inner.unwant(&mut state, &inner.channels.connection(connection.id()));
        for group in groups {
            if !state.members.contains_group(&group) {
                inner.unwant(&mut state, &inner.channels.group(&group));
            }
        }
        if let Some(user) = user
            && !state.members.contains_user(&user)
        {
            inner.unwant(&mut state, &inner.channels.user(&user));
        }
    }

    fn send(
        &self,
        target: Target,
        message: Arc<OutboundMessage>,
        _origin: Option<&str>,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        self.start();
        async move {
            let inner = &self.inner;
            let invocation = |excluded: Vec<String>| -> Result<Vec<u8>, HubError> {
                Ok(Invocation {
                    excluded,
                    payloads: payloads(&message, None)?,
                    result: None,
                }
                .encode())
            };
            // Each message is encoded once; targets of several channels publish it on each.
            let mut published: Vec<(String, Vec<u8>)> = Vec::new();
            match target {
                Target::All => published.push((inner.channels.all(), invocation(Vec::new())?)),
                Target::AllExcept(excluded) => published.push((inner.channels.all(), invocation(excluded)?)),
                Target::Group(group) => published.push((inner.channels.group(&group), invocation(Vec::new())?)),
                Target::GroupExcept(group, excluded) => {
                    published.push((inner.channels.group(&group), invocation(excluded)?))
                }
                Target::Groups(groups) => {
                    let bytes = invocation(Vec::new())?;
                    published.extend(groups.iter().map(|group| (inner.channels.group(group), bytes.clone())));
                }
                Target::User(user) => published.push((inner.channels.user(&user), invocation(Vec::new())?)),
                Target::Users(users) => {
                    let bytes = invocation(Vec::new())?;
                    published.extend(users.iter().map(|user| (inner.channels.user(user), bytes.clone())));
                }
                Target::Connection(id) => return self.send_to_connections(&[id], &message).await,
                Target::Connections(ids) => return self.send_to_connections(&ids, &message).await,
            }
            for (channel, bytes) in published {
                inner.publish(&channel, bytes).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn add_to_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        self.start();
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move { self.inner.change_group(GroupAction::Add, &connection_id, &group).await }.boxed()
    }

    fn remove_from_group(&self, connection_id: &str, group: &str) -> BoxFuture<'_, Result<(), HubError>> {
        self.start();
        let (connection_id, group) = (connection_id.to_owned(), group.to_owned());
        async move {
            self.inner
                .change_group(GroupAction::Remove, &connection_id, &group)
                .await
        }
        .boxed()
    }

    fn connection(&self, connection_id: &str) -> Option<ConnectionHandle> {
        self.inner.state().members.get(connection_id).cloned()
    }

    /// A client result from a connection here, or (through Redis) on another server.
    fn invoke(
        &self,
        connection_id: &str,
        message: Arc<OutboundMessage>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CompletionResult, HubError>> {
        self.start();
        let local = self.connection(connection_id);
        let connection_id = connection_id.to_owned();
        async move {
            if let Some(connection) = local {
                return connection.invoke(&message, timeout).await;
            }
            let inner = &self.inner;
            let invocation_id = format!(
                "{}:{}",
                inner.server_name,
                inner.next_result.fetch_add(1, Ordering::Relaxed) + 1
            );
            let bytes = Invocation {
                excluded: Vec::new(),
                payloads: payloads(&message, Some(&invocation_id))?,
                result: Some((invocation_id.clone(), inner.channels.results(&inner.server_name))),
            }
            .encode();
            let (sender, answer) = oneshot::channel();
            lock(&inner.results).insert(invocation_id.clone(), sender);
            let outcome = async {
                let receivers = inner.publish(&inner.channels.connection(&connection_id), bytes).await?;
                if receivers < 1 {
                    return Err(HubError::exception(
                        "IOException",
                        format!("Connection '{connection_id}' does not exist."),
                    ));
                }
                match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(result)) => Ok(result),
                    Ok(Err(_)) => Err(HubError::exception("IOException", "The backplane went away.")),
                    Err(_) => Err(HubError::exception(
                        "TimeoutException",
                        format!(
                            "The client did not answer invocation '{invocation_id}' within {} ms.",
                            timeout.as_millis()
                        ),
                    )),
                }
            }
            .await;
            lock(&inner.results).remove(&invocation_id);
            outcome
        }
        .boxed()
    }

    fn exists(&self, what: Presence) -> BoxFuture<'_, Result<bool, HubError>> {
        // ASP.NET Core's backplane keeps no directory of other servers' connections either.
        let state = self.inner.state();
        let found = match &what {
            Presence::Connection(id) => Ok(state.members.contains_connection(id)),
            _ => Err(HubError::exception(
                "NotSupportedException",
                "The Redis backplane cannot tell whether a user or a group exists on other servers.",
            )),
        };
        std::future::ready(found).boxed()
    }
}

impl RedisLifetimeManager {
    /// Connection sends: straight to a connection here (ASP.NET Core does the same), through
    /// Redis to any other.
    async fn send_to_connections(&self, ids: &[String], message: &OutboundMessage) -> Result<(), HubError> {
        let inner = &self.inner;
        let mut remote = Vec::new();
        {
            let state = inner.state();
            for id in ids {
                match state.members.get(id) {
                    Some(connection) => connection.send_frame(message.frame(connection.protocol())?),
                    None => remote.push(id),
                }
            }
        }
        if remote.is_empty() {
            return Ok(());
        }
        let bytes = Invocation {
            excluded: Vec::new(),
            payloads: payloads(message, None)?,
            result: None,
        }
        .encode();
        for id in remote {
            inner.publish(&inner.channels.connection(id), bytes.clone()).await?;
        }
        Ok(())
    }
}
