//! The method table of a hub: names (looked up ignoring case), how arguments bind to the
//! parameter types, and how results and streams become messages.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::FutureExt;
use futures_util::stream::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::stream::HubStream;
use super::{Hub, HubContext};
use crate::HubError;
use crate::connection::dispatcher::{Invoked, ItemStream};
use crate::connection::invocations::StreamInput;
use crate::protocol::{Protocol, RawValue};

/// Why the arguments of an invocation could not be bound to a method's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError {
    message: String,
}

impl BindError {
    pub(crate) fn count(provided: usize, expected: usize) -> Self {
        Self {
            message: format!("Invocation provides {provided} argument(s) but target expects {expected}."),
        }
    }

    fn types() -> Self {
        Self {
            message: "Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
                .into(),
        }
    }

    /// The reference server's text for the failure.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The arguments of one invocation, handed to the parameters in order.
pub struct Binder {
    arguments: std::vec::IntoIter<RawValue>,
    streams: std::vec::IntoIter<mpsc::Receiver<StreamInput>>,
}

impl Binder {
    pub(crate) fn new(arguments: Vec<RawValue>, streams: Vec<mpsc::Receiver<StreamInput>>) -> Self {
        Self {
            arguments: arguments.into_iter(),
            streams: streams.into_iter(),
        }
    }
}

impl std::fmt::Debug for Binder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binder").finish_non_exhaustive()
    }
}

/// One parameter of a hub method: a wire argument (any `DeserializeOwned` type), or a stream
/// the client uploads ([`HubStream`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter of a hub method",
    label = "hub method parameters must implement `serde::Deserialize` (or be a `HubStream<T>`)",
    note = "each wire argument must implement `serde::de::DeserializeOwned + Send + 'static`"
)]
pub trait HubArg: Sized + Send + 'static {
    /// How many wire arguments the parameter takes (0 or 1).
    const WIRE: usize;
    /// How many client streams the parameter takes (0 or 1).
    const STREAMS: usize;
    /// Takes the parameter's value from the invocation.
    fn bind(binder: &mut Binder) -> Result<Self, BindError>;
}

impl<T: DeserializeOwned + Send + 'static> HubArg for T {
    const WIRE: usize = 1;
    const STREAMS: usize = 0;

    fn bind(binder: &mut Binder) -> Result<Self, BindError> {
        let raw = binder.arguments.next().ok_or_else(BindError::types)?;
        raw.decode::<T>().map_err(|_| BindError::types())
    }
}

impl<T: DeserializeOwned + Send + 'static> HubArg for HubStream<T> {
    const WIRE: usize = 0;
    const STREAMS: usize = 1;

    fn bind(binder: &mut Binder) -> Result<Self, BindError> {
        binder.streams.next().map(HubStream::new).ok_or_else(BindError::types)
    }
}

/// The parameters of a method: a tuple of [`HubArg`]s, bound positionally.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the parameters of a hub method",
    label = "hub method parameters must be a tuple of `HubArg` types (up to 12)"
)]
pub trait InvocationArgs: Sized + Send + 'static {
    /// How many wire arguments the method expects.
    const COUNT: usize;
    /// How many client streams the method expects.
    const STREAMS: usize;
    /// Binds the arguments, after their counts were checked.
    fn bind(binder: &mut Binder) -> Result<Self, BindError>;
}

macro_rules! impl_invocation_args {
    ($($name:ident),*) => {
        impl<$($name: HubArg),*> InvocationArgs for ($($name,)*) {
            const COUNT: usize = 0 $(+ $name::WIRE)*;
            const STREAMS: usize = 0 $(+ $name::STREAMS)*;

            #[allow(unused_variables, clippy::unused_unit)]
            fn bind(binder: &mut Binder) -> Result<Self, BindError> {
                Ok(($($name::bind(binder)?,)*))
            }
        }
    };
}

impl_invocation_args!();
impl_invocation_args!(A);
impl_invocation_args!(A, B);
impl_invocation_args!(A, B, C);
impl_invocation_args!(A, B, C, D);
impl_invocation_args!(A, B, C, D, E);
impl_invocation_args!(A, B, C, D, E, F);
impl_invocation_args!(A, B, C, D, E, F, G);
impl_invocation_args!(A, B, C, D, E, F, G, H);
impl_invocation_args!(A, B, C, D, E, F, G, H, I);
impl_invocation_args!(A, B, C, D, E, F, G, H, I, J);
impl_invocation_args!(A, B, C, D, E, F, G, H, I, J, K);
impl_invocation_args!(A, B, C, D, E, F, G, H, I, J, K, L);

/// What a hub method returns: a result whose value is sent to the caller.
///
/// `Ok(())` completes with a null result, as a `void` .NET method does.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a hub method",
    label = "return `Result<T, E>` where `T: serde::Serialize` and `E: Into<HubError>`"
)]
pub trait IntoHubResult: Send + 'static {
    /// Encodes the value for `protocol`, or gives the error.
    fn into_hub_result(self, protocol: Protocol) -> Result<RawValue, HubError>;
}

impl<T, E> IntoHubResult for Result<T, E>
where
    T: Serialize + Send + 'static,
    E: Into<HubError> + Send + 'static,
{
    fn into_hub_result(self, protocol: Protocol) -> Result<RawValue, HubError> {
        let value = self.map_err(Into::into)?;
        RawValue::encode(protocol, &value).map_err(HubError::encode)
    }
}

pub(crate) type Handler<H> =
    Arc<dyn Fn(Arc<H>, HubContext<H>, &mut Binder) -> Result<Invoked, BindError> + Send + Sync>;

/// The kind of a method, which must match the kind of invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodKind {
    /// Called with an Invocation; completes with one result.
    Unary,
    /// Called with a StreamInvocation; sends stream items, then a Completion.
    Stream,
}

pub(crate) struct MethodEntry<H> {
    pub name: String,
    pub kind: MethodKind,
    /// Wire arguments expected.
    pub arguments: usize,
    /// Client streams expected.
    pub streams: usize,
    pub handler: Handler<H>,
}

/// A hub's method table, filled by [`Hub::methods`].
pub struct Methods<H> {
    entries: HashMap<String, MethodEntry<H>>,
    errors: Vec<String>,
}

fn encode_items<S, T>(stream: S, protocol: Protocol) -> ItemStream
where
    S: Stream<Item = Result<T, HubError>> + Send + 'static,
    T: Serialize + Send + 'static,
{
    stream
        .map(move |item| item.and_then(|value| RawValue::encode(protocol, &value).map_err(HubError::encode)))
        .boxed()
}

impl<H: Hub> Methods<H> {
    pub(crate) fn collect() -> Result<Self, Vec<String>> {
        let mut methods = Self {
            entries: HashMap::new(),
            errors: Vec::new(),
        };
        H::methods(&mut methods);
        if methods.errors.is_empty() {
            Ok(methods)
        } else {
            Err(methods.errors)
        }
    }

    /// Adds a method called `name` on the wire. `handler` gets the hub, the caller's context
    /// and the bound arguments (a tuple), and returns a `Result`.
    ///
    /// Names are matched ignoring case, so two names that differ only in case collide, which
    /// is reported when the app is built.
    pub fn method<A, F, Fut, R>(&mut self, name: &str, handler: F) -> &mut Self
    where
        A: InvocationArgs,
        F: Fn(Arc<H>, HubContext<H>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHubResult,
    {
        let handler: Handler<H> = Arc::new(move |hub, cx, binder| {
            let arguments = A::bind(binder)?;
            let protocol = cx.protocol();
            let future = handler(hub, cx, arguments);
            Ok(Invoked::Unary(
                async move { future.await.into_hub_result(protocol) }.boxed(),
            ))
        });
        self.insert::<A>(name, MethodKind::Unary, handler);
        self
    }

    /// Adds a streaming method: `handler` returns (or fails to return) a stream whose items
    /// go to the caller one by one. The stream stops when the client cancels or leaves;
    /// [`HubContext::cancellation`] tells the method.
    pub fn stream<A, F, Fut, S, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        A: InvocationArgs,
        F: Fn(Arc<H>, HubContext<H>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
        S: Stream + Send + 'static,
        S::Item: Serialize + Send + 'static,
        E: Into<HubError> + Send + 'static,
    {
        self.try_stream(name, move |hub, cx, arguments: A| {
            let future = handler(hub, cx, arguments);
            async move { future.await.map(|stream| stream.map(Ok::<_, HubError>)) }
        })
    }

    /// Adds a streaming method whose items may fail: an `Err` item ends the stream with
    /// that error.
    pub fn try_stream<A, F, Fut, S, T, E, IE>(&mut self, name: &str, handler: F) -> &mut Self
    where
        A: InvocationArgs,
        F: Fn(Arc<H>, HubContext<H>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
        S: Stream<Item = Result<T, IE>> + Send + 'static,
        T: Serialize + Send + 'static,
        E: Into<HubError> + Send + 'static,
        IE: Into<HubError> + Send + 'static,
    {
        let handler: Handler<H> = Arc::new(move |hub, cx, binder| {
            let arguments = A::bind(binder)?;
            let protocol = cx.protocol();
            let future = handler(hub, cx, arguments);
            Ok(Invoked::Stream(
                async move {
                    let stream = future.await.map_err(Into::into)?;
                    Ok(encode_items(stream.map(|item| item.map_err(Into::into)), protocol))
                }
                .boxed(),
            ))
        });
        self.insert::<A>(name, MethodKind::Stream, handler);
        self
    }

    fn insert<A: InvocationArgs>(&mut self, name: &str, kind: MethodKind, handler: Handler<H>) {
        let key = name.to_lowercase();
        if let Some(existing) = self.entries.get(&key) {
            self.errors.push(format!(
                "the hub method name '{name}' collides with '{}' (method names are matched ignoring case)",
                existing.name
            ));
            return;
        }
        let entry = MethodEntry {
            name: name.to_owned(),
            kind,
            arguments: A::COUNT,
            streams: A::STREAMS,
            handler,
        };
        self.entries.insert(key, entry);
    }

    pub(crate) fn find(&self, name: &str) -> Option<&MethodEntry<H>> {
        if let Some(entry) = self.entries.get(name) {
            return Some(entry);
        }
        self.entries.get(&name.to_lowercase())
    }
}
