//! The chat example: a hub that relays messages to everyone, and a page that uses it.
//!
//! ```text
//! cargo run -p chat                     # http://127.0.0.1:5000
//! cargo run -p chat -- --port 8080 --signalr-js path/to/signalr.min.js
//! ```
//!
//! The page loads the official `@microsoft/signalr` browser client from a public CDN, as
//! Microsoft's tutorials do. `--signalr-js FILE` (or `SIGNALR_JS=FILE`) serves a local copy
//! instead, for machines without internet access.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use switchboard::service::ServiceOptions;
use switchboard::{HubContext, HubError, Switchboard};
use switchboard_service::{Config, Relay};

/// The official browser client, pinned to the version the project tests against.
const CDN_SIGNALR_JS: &str = "https://cdn.jsdelivr.net/npm/@microsoft/signalr@10.0.11/dist/browser/signalr.min.js";
const LOCAL_SIGNALR_JS: &str = "/lib/signalr.min.js";
const PAGE: &str = include_str!("../static/index.html");

/// What the chat page can be told: the browser registers `ReceiveMessage`.
#[switchboard::client]
trait ChatClient {
    /// Someone said something.
    async fn receive_message(&self, user: String, message: String);
}

/// Relays every message to every connected client.
struct Chat;

#[switchboard::hub("/chat", client = ChatClient)]
impl Chat {
    /// Called by the page as `connection.invoke("SendMessage", user, message)`.
    async fn send_message(&self, cx: &HubContext<Self>, user: String, message: String) -> Result<(), HubError> {
        cx.clients().all().receive_message(user, message).await
    }
}

struct Args {
    port: u16,
    signalr_js: Option<String>,
    stop_when_stdin_closes: bool,
    self_hosted: bool,
}

const USAGE: &str = "usage: chat [--port N] [--signalr-js FILE] [--self-hosted] [--stop-when-stdin-closes]

Runs through the relay named by Azure__SignalR__ConnectionString (or the relays named by
Azure__SignalR__ConnectionString__{Name}__{primary|secondary}), or else through a relay
embedded in this process (on loopback); --self-hosted holds the client connections itself.";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(5000),
        signalr_js: std::env::var("SIGNALR_JS").ok().filter(|s| !s.is_empty()),
        stop_when_stdin_closes: false,
        self_hosted: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => {
                args.port = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--port needs a port number")?
            }
            "--signalr-js" => args.signalr_js = Some(it.next().ok_or("--signalr-js needs a file")?),
            "--stop-when-stdin-closes" => args.stop_when_stdin_closes = true,
            "--self-hosted" => args.self_hosted = true,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let local_js = match &args.signalr_js {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                eprintln!("cannot read the SignalR client at {path}: {error}");
                std::process::exit(1);
            }
        },
        None => None,
    };
    let script = if local_js.is_some() {
        LOCAL_SIGNALR_JS
    } else {
        CDN_SIGNALR_JS
    };
    let page = PAGE.replace("{{SIGNALR_JS}}", script);

    // Service mode unless asked otherwise: the configured relay, or one embedded here.
    let mut builder = Switchboard::builder().mount(Chat);
    // The embedded relay, if any, runs until main returns.
    let mut _embedded = None;
    if !args.self_hosted {
        let mut options = ServiceOptions::from_env();
        // No relay configured (`Azure__SignalR__ConnectionString`, or named endpoints).
        if options.connection_string.is_none() && options.endpoints.is_empty() {
            let relay = match Relay::bind(Config::new(relay_key()).listen("127.0.0.1:0")).await {
                Ok(relay) => relay,
                Err(error) => {
                    eprintln!("cannot start the embedded relay: {error}");
                    std::process::exit(1);
                }
            };
            tracing::info!(relay = %relay.url(), "clients connect through an embedded relay");
            options.connection_string = Some(relay.connection_string());
            _embedded = Some(relay);
        }
        builder = builder.with_service(options);
    }
    let app = match builder.build() {
        Ok(app) => app,
        Err(error) => {
            eprintln!("configuration error: {error}");
            std::process::exit(1);
        }
    };
    let running = match app.start() {
        Ok(running) => running,
        Err(error) => {
            eprintln!("cannot start: {error}");
            std::process::exit(1);
        }
    };
    let mut router = app.router().route("/", get(move || async move { Html(page) }));
    if let Some(js) = local_js {
        router = router.route(
            LOCAL_SIGNALR_JS,
            get(move || async move { ([(header::CONTENT_TYPE, "text/javascript")], js).into_response() as Response }),
        );
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {error}", args.port);
            std::process::exit(1);
        }
    };
    // In service mode, wait for the app's server connections so the first page works.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), running.connected()).await;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    println!("Now listening on: http://127.0.0.1:{port}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let stop_with_stdin = args.stop_when_stdin_closes;
    let shutdown = async move {
        if stop_with_stdin {
            // A test harness holds our stdin open; when it goes, so do we.
            let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    if let Err(error) = switchboard::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("server error: {error}");
        std::process::exit(1);
    }
    running.shutdown().await;
}

/// A fresh access key for the embedded relay, shared only with this process.
fn relay_key() -> String {
    let mut bytes = [0u8; 24];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
