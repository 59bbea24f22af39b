//! What the macros' generated code calls. Not a public API: it may change at any time.

pub use futures_util::stream::Stream;
pub use tokio_util::sync::CancellationToken;

pub use crate::__if_client as if_client;

use crate::hub::HubArg;

/// Checks, with an error on the parameter's type, that it can be a hub method parameter.
pub fn assert_hub_arg<T: HubArg>() {}

/// A value a hub method can return (or a stream can yield): anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a hub method",
    label = "hub method results (and stream items) must implement `serde::Serialize`",
    note = "derive `serde::Serialize` for the type, or return a type that implements it"
)]
pub trait HubReturn {}

impl<T: serde::Serialize + Send + 'static> HubReturn for T {}

/// Checks, with an error on the return type, that it can be sent to the client.
pub fn assert_hub_return<T: HubReturn>() {}

/// Expands its input only when the `client` feature of `switchboard` is on.
#[cfg(feature = "client")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_client {
    ($($tokens:tt)*) => { $($tokens)* };
}

/// Expands its input only when the `client` feature of `switchboard` is on.
#[cfg(not(feature = "client"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_client {
    ($($tokens:tt)*) => {};
}
