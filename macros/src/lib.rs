//! Procedural macros of Switchboard: `#[hub]` and `#[client]`.
//!
//! The crate is kept thin: it parses and validates, then emits calls into the runtime
//! (`::switchboard`), where the logic lives. Errors are spanned on the offending tokens and
//! all reported at once, and the original item is emitted with them so editors keep
//! working. Use the macros through `switchboard`, which re-exports them.

use proc_macro::TokenStream;

mod client;
mod errors;
mod hub;
mod names;
mod types;

/// Turns an `impl` block into a hub. See `switchboard`'s documentation of `hub`.
#[proc_macro_attribute]
pub fn hub(attr: TokenStream, item: TokenStream) -> TokenStream {
    hub::expand(attr.into(), item.into()).into()
}

/// Turns a trait of client methods into typed proxies. See `switchboard`'s documentation of
/// `client`.
#[proc_macro_attribute]
pub fn client(attr: TokenStream, item: TokenStream) -> TokenStream {
    client::expand(attr.into(), item.into()).into()
}
