//! Wire names (`#[hub(name)]`, raw identifiers), `#[hub(skip)]` helpers, every accepted hook
//! and context shape, a hub with state, and a hub type named by a path.

use std::sync::atomic::{AtomicUsize, Ordering};

use switchboard::{HubContext, HubError};

mod hubs {
    pub struct Counter {
        pub calls: std::sync::atomic::AtomicUsize,
    }
}

#[switchboard::hub("/counter")]
impl hubs::Counter {
    /// On the wire as `Add`.
    async fn add(&self, amount: usize) -> usize {
        self.bump(amount)
    }

    /// A name of one's own, as a .NET hub would have it.
    #[hub(name = "getTotal")]
    async fn total(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// `Type` on the wire.
    async fn r#type(&self) -> String {
        "counter".into()
    }

    /// The context by value, anywhere among the arguments.
    async fn whoami(&self, prefix: String, cx: HubContext<Self>) -> String {
        format!("{prefix}{}", cx.connection_id())
    }

    /// A tuple, a nested generic type, and patterns in the arguments.
    async fn shapes(&self, (a, b): (i32, i32), _: Option<Vec<String>>, mut c: u8) -> Result<i32, HubError> {
        c = c.saturating_add(1);
        Ok(a + b + i32::from(c))
    }

    /// Not a hub method: a plain helper, which may be anything.
    #[hub(skip)]
    fn bump(&self, amount: usize) -> usize {
        self.calls.fetch_add(amount, Ordering::Relaxed) + amount
    }

    #[hub(skip)]
    pub fn generic_helper<T: Default>(&self) -> T {
        T::default()
    }

    #[on_connected]
    async fn hello(&self) {
        self.bump(0);
    }

    #[on_disconnected]
    async fn goodbye(&self, error: Option<HubError>) {
        let _ = error;
    }

    const LIMIT: usize = 10;
}

struct Fallible;

#[switchboard::hub("/fallible")]
impl Fallible {
    #[on_connected]
    async fn check(&self) -> Result<(), HubError> {
        Err(HubError::new("no one is welcome"))
    }

    #[on_disconnected]
    async fn gone(&self, cx: &HubContext<Self>) {
        let _ = cx;
    }
}

/// A hook-only hub, and a hub with nothing in it.
struct Hooks;

#[switchboard::hub("/hooks")]
impl Hooks {
    #[on_disconnected]
    async fn gone(&self) {}
}

struct Empty;

#[switchboard::hub("/empty")]
impl Empty {}

fn main() {
    let counter = hubs::Counter {
        calls: AtomicUsize::new(0),
    };
    assert_eq!(counter.bump(2), 2);
    assert_eq!(counter.generic_helper::<u8>(), 0);
    assert_eq!(hubs::Counter::LIMIT, 10);
    let _app = switchboard::Switchboard::builder()
        .mount(counter)
        .mount(Fallible)
        .mount(Hooks)
        .mount(Empty)
        .build()
        .unwrap();
}
