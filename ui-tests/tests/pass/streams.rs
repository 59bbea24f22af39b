//! Streams both ways: every streaming return shape, `HubStream<T>` parameters, and
//! `CancellationToken` parameters.

use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use switchboard::{HubContext, HubError, HubStream};
use tokio_util::sync::CancellationToken;

struct Streams {
    start: i32,
}

#[switchboard::hub("/streams")]
impl Streams {
    async fn counter(&self, count: i32) -> impl Stream<Item = i32> {
        stream::iter(self.start..self.start + count)
    }

    async fn checked(&self, count: i32) -> Result<impl Stream<Item = i32>, HubError> {
        if count < 0 {
            return Err(HubError::new("count must not be negative"));
        }
        Ok(stream::iter(0..count))
    }

    async fn fallible_items(&self) -> impl Stream<Item = Result<String, HubError>> {
        stream::iter([Ok("one".to_owned()), Err(HubError::new("two failed"))])
    }

    async fn fallible_both(&self, fail: bool) -> Result<impl Stream<Item = Result<u8, HubError>>, HubError> {
        if fail {
            return Err(HubError::new("no stream"));
        }
        Ok(stream::iter([Ok(1), Ok(2)]))
    }

    async fn explicit_bounds(&self) -> impl Stream<Item = u64> + Send + 'static {
        stream::empty()
    }

    async fn until_cancelled(&self, cancel: CancellationToken, cx: &HubContext<Self>) -> impl Stream<Item = u64> {
        let _ = cx.connection_id();
        stream::unfold(0_u64, move |n| {
            let cancel = cancel.clone();
            async move { (!cancel.is_cancelled()).then_some((n, n + 1)) }
        })
    }

    async fn sum(&self, numbers: HubStream<i64>) -> Result<i64, HubError> {
        numbers.try_fold(0, |sum, n| async move { Ok(sum + n) }).await
    }

    async fn concat(
        &self,
        separator: String,
        parts: HubStream<String>,
        cancel: CancellationToken,
    ) -> Result<String, HubError> {
        let parts: Vec<String> = parts.try_collect().await?;
        if cancel.is_cancelled() {
            return Err(HubError::new("cancelled"));
        }
        Ok(parts.join(&separator))
    }

    async fn names(&self, items: HubStream<items::Item>) -> Result<Vec<String>, HubError> {
        items.map_ok(|item| item.name).try_collect().await
    }

    async fn relay(&self, items: HubStream<i32>) -> impl Stream<Item = Result<i32, HubError>> {
        items
    }

    async fn merge(&self, first: HubStream<i32>, second: HubStream<i32>) -> impl Stream<Item = Result<i32, HubError>> {
        stream::select(first, second)
    }

    async fn cancellable(&self, cancel: switchboard::__private::CancellationToken) {
        cancel.cancelled().await;
    }
}

mod items {
    /// A structured stream item.
    #[derive(serde::Deserialize)]
    pub struct Item {
        pub name: String,
    }
}

fn main() {
    let _app = switchboard::Switchboard::builder()
        .mount(Streams { start: 1 })
        .build()
        .unwrap();
}
