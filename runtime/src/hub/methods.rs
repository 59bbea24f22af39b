//! The method table of a hub: names (looked up ignoring case), how arguments bind to the
//! parameter types, and how results become completions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Hub, HubContext};
use crate::HubError;
use crate::protocol::{Protocol, RawValue};

/// Why the arguments of an invocation could not be bound to a method's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError {
    message: String,
}

impl BindError {
    fn count(provided: usize, expected: usize) -> Self {
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

/// The wire arguments of a method, bound positionally: a tuple of parameter types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the parameters of a hub method",
    label = "hub method parameters must be a tuple of types that implement `serde::Deserialize`",
    note = "each wire argument must implement `serde::de::DeserializeOwned + Send + 'static`"
)]
pub trait InvocationArgs: Sized + Send + 'static {
    /// How many wire arguments the method expects.
    const COUNT: usize;

    /// Decodes the arguments, after their count was checked.
    fn bind(arguments: Vec<RawValue>) -> Result<Self, BindError>;
}

macro_rules! impl_invocation_args {
    ($count:expr; $($name:ident),*) => {
        impl<$($name: DeserializeOwned + Send + 'static),*> InvocationArgs for ($($name,)*) {
            const COUNT: usize = $count;

            #[allow(unused_variables, unused_mut, clippy::unused_unit)]
            fn bind(arguments: Vec<RawValue>) -> Result<Self, BindError> {
                let mut arguments = arguments.into_iter();
                Ok(($({
                    let raw = arguments.next().ok_or_else(BindError::types)?;
                    raw.decode::<$name>().map_err(|_| BindError::types())?
                },)*))
            }
        }
    };
}

impl_invocation_args!(0;);
impl_invocation_args!(1; A);
impl_invocation_args!(2; A, B);
impl_invocation_args!(3; A, B, C);
impl_invocation_args!(4; A, B, C, D);
impl_invocation_args!(5; A, B, C, D, E);
impl_invocation_args!(6; A, B, C, D, E, F);
impl_invocation_args!(7; A, B, C, D, E, F, G);
impl_invocation_args!(8; A, B, C, D, E, F, G, H);
impl_invocation_args!(9; A, B, C, D, E, F, G, H, I);
impl_invocation_args!(10; A, B, C, D, E, F, G, H, I, J);
impl_invocation_args!(11; A, B, C, D, E, F, G, H, I, J, K);
impl_invocation_args!(12; A, B, C, D, E, F, G, H, I, J, K, L);

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

pub(crate) type Handler<H> = Arc<
    dyn Fn(Arc<H>, HubContext<H>, Vec<RawValue>) -> Result<BoxFuture<'static, Result<RawValue, HubError>>, BindError>
        + Send
        + Sync,
>;

/// The kind of a method, which must match the kind of invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodKind {
    /// Called with an Invocation; completes with one result.
    Unary,
}

pub(crate) struct MethodEntry<H> {
    pub name: String,
    pub kind: MethodKind,
    pub handler: Handler<H>,
}

/// A hub's method table, filled by [`Hub::methods`].
pub struct Methods<H> {
    entries: HashMap<String, MethodEntry<H>>,
    errors: Vec<String>,
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
        let handler: Handler<H> = Arc::new(move |hub, cx, arguments| {
            if arguments.len() != A::COUNT {
                return Err(BindError::count(arguments.len(), A::COUNT));
            }
            let arguments = A::bind(arguments)?;
            let protocol = cx.protocol();
            let future = handler(hub, cx, arguments);
            Ok(async move { future.await.into_hub_result(protocol) }.boxed())
        });
        self.insert(name, MethodKind::Unary, handler);
        self
    }

    fn insert(&mut self, name: &str, kind: MethodKind, handler: Handler<H>) {
        let key = name.to_lowercase();
        if let Some(existing) = self.entries.get(&key) {
            self.errors.push(format!(
                "the hub method name '{name}' collides with '{}' (method names are matched ignoring case)",
                existing.name
            ));
            return;
        }
        self.entries.insert(
            key,
            MethodEntry {
                name: name.to_owned(),
                kind,
                handler,
            },
        );
    }

    pub(crate) fn find(&self, name: &str) -> Option<&MethodEntry<H>> {
        if let Some(entry) = self.entries.get(name) {
            return Some(entry);
        }
        self.entries.get(&name.to_lowercase())
    }
}
