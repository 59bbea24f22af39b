//! Procedural macros of Switchboard.
//!
//! The `#[hub]` and `#[client]` attributes live here. The crate is kept thin: it parses and
//! validates, then emits calls into `::switchboard::__private`, where the logic lives.
