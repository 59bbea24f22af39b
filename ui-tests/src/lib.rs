//! Compile-time tests of the `#[switchboard::hub]` and `#[switchboard::client]` macros.
//!
//! The crate has no code of its own: `tests/ui.rs` compiles each program in `tests/pass`
//! (which must build and run) and in `tests/fail` (which must fail with the compiler output
//! in the `.stderr` file beside it).
