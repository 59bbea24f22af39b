//! The generated code names everything by absolute path: it compiles without the prelude.
#![no_implicit_prelude]

/// What the hub calls on its clients.
#[::switchboard::client]
pub trait Client {
    /// Fire and forget.
    async fn notify(&self, text: ::std::string::String);
    /// A client result.
    async fn answer(&self) -> ::core::primitive::i32;
    /// A fallible client result.
    async fn try_answer(&self) -> ::core::result::Result<::core::primitive::i32, ::std::string::String>;
}

pub struct Bare {
    greeting: ::std::string::String,
}

#[::switchboard::hub(
    "/bare",
    client = Client,
    detailed_errors = true,
    max_message_size = 1024,
    transports = [WebSockets],
    protocols = [json, messagepack],
    stateful_reconnect = false,
    parallel_invocations = 2,
    stream_buffer_capacity = 5,
    authorize = false
)]
impl Bare {
    async fn greet(&self, name: ::std::string::String) -> ::std::string::String {
        let mut text = ::std::clone::Clone::clone(&self.greeting);
        text.push_str(&name);
        text
    }

    async fn nothing(&self) {}

    async fn fallible(&self, fail: ::core::primitive::bool) -> ::core::result::Result<(), ::switchboard::HubError> {
        if fail {
            ::core::result::Result::Err(::switchboard::HubError::new("failed"))
        } else {
            ::core::result::Result::Ok(())
        }
    }

    async fn tell(
        &self,
        cx: &::switchboard::HubContext<Self>,
        text: ::std::string::String,
    ) -> ::core::result::Result<::core::primitive::i32, ::switchboard::HubError> {
        cx.clients().all().notify(text).await?;
        cx.clients().caller().answer().await
    }

    async fn owned_context(&self, cx: ::switchboard::HubContext<Self>) -> ::std::string::String {
        ::std::borrow::ToOwned::to_owned(cx.connection_id())
    }

    async fn numbers(
        &self,
        count: ::core::primitive::u32,
    ) -> impl ::futures_util::Stream<Item = ::core::primitive::u32> {
        ::futures_util::stream::iter(0..count)
    }

    async fn maybe_numbers(
        &self,
    ) -> ::core::result::Result<
        impl ::futures_util::Stream<Item = ::core::result::Result<::core::primitive::u32, ::switchboard::HubError>>,
        ::switchboard::HubError,
    > {
        ::core::result::Result::Ok(::futures_util::stream::empty())
    }

    async fn upload(
        &self,
        items: ::switchboard::HubStream<::core::primitive::i64>,
        cancel: ::tokio_util::sync::CancellationToken,
    ) -> ::core::primitive::usize {
        let _ = cancel;
        ::futures_util::StreamExt::count(items).await
    }

    #[on_connected]
    async fn connected(
        &self,
        cx: &::switchboard::HubContext<Self>,
    ) -> ::core::result::Result<(), ::switchboard::HubError> {
        let _ = cx;
        ::core::result::Result::Ok(())
    }

    #[on_disconnected]
    async fn disconnected(
        &self,
        cx: &::switchboard::HubContext<Self>,
        error: ::core::option::Option<::switchboard::HubError>,
    ) {
        let _ = (cx, error);
    }
}

fn main() {
    let hub = Bare {
        greeting: ::std::borrow::ToOwned::to_owned("hello "),
    };
    ::std::assert_eq!(
        <Bare as ::switchboard::Hub>::PATH,
        ::core::option::Option::Some("/bare")
    );
    let _app = ::switchboard::Switchboard::builder().mount(hub).build().unwrap();
}
