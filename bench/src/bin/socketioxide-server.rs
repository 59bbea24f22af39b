//! `socketioxide-server`: the Rust Socket.IO comparator (socketioxide on axum), answering the
//! benchmark's Socket.IO events like `bench/node/socketio-server.mjs` does with socket.io 4.
//!
//! ```text
//! socketioxide-server [--port N] [--stop-when-stdin-closes] [--drop-every N]
//! ```
//!
//! Events on the main namespace, payloads as JSON arguments `(ticks, payload)` (a number and a
//! string, see `bench/README.md`):
//!
//! * `echo` — emitted back to the sender with the same arguments;
//! * `broadcast` — `measure` emitted to every socket of the namespace (the sender too).
//!
//! WebSocket transport only, defaults otherwise (4 KiB WebSocket read buffer, ping every 25 s).
//! `--drop-every N` ignores every N-th `broadcast` event: fault injection that the harness's
//! tests use to check that the generator's Socket.IO mode catches losses.
//!
//! Listens on 127.0.0.1 and prints `Now listening on: http://127.0.0.1:<port>` once it accepts.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::serve::ListenerExt;
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};

fn usage() -> ! {
    eprintln!("usage: socketioxide-server [--port N] [--stop-when-stdin-closes] [--drop-every N]");
    std::process::exit(2);
}

/// The arguments of both events: the sender's time stamp and the payload.
type Args = (u64, String);

/// `broadcast` events received.
static BROADCASTS: AtomicU64 = AtomicU64::new(0);
/// `--drop-every`: 0, or ignore every N-th `broadcast` event.
static DROP_EVERY: AtomicU64 = AtomicU64::new(0);

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut stop_when_stdin_closes = false;
    let mut drop_every = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--stop-when-stdin-closes" => stop_when_stdin_closes = true,
            "--drop-every" => drop_every = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let (layer, io) = SocketIo::builder()
        .transports([socketioxide::TransportType::Websocket])
        .build_layer();
    DROP_EVERY.store(drop_every, Ordering::Relaxed);
    io.ns("/", async |socket: SocketRef| {
        socket.on("echo", async |socket: SocketRef, Data::<Args>(args)| {
            if let Err(e) = socket.emit("echo", &args) {
                eprintln!("socketioxide-server: echo: {e}");
            }
        });
        socket.on("broadcast", async |io: SocketIo, Data::<Args>(args)| {
            let n = BROADCASTS.fetch_add(1, Ordering::Relaxed) + 1;
            let drop_every = DROP_EVERY.load(Ordering::Relaxed);
            if drop_every > 0 && n.is_multiple_of(drop_every) {
                return;
            }
            if let Err(e) = io.emit("measure", &args).await {
                eprintln!("socketioxide-server: broadcast: {e}");
            }
        });
    });
    let app = axum::Router::new().layer(layer);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("socketioxide-server: cannot listen on 127.0.0.1:{port}: {error}");
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("Now listening on: http://127.0.0.1:{port}");
    let _ = std::io::stdout().flush();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = async move {
        if stop_when_stdin_closes {
            let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    tokio::select! {
        result = axum::serve(listener, app).into_future() => {
            if let Err(e) = result {
                eprintln!("socketioxide-server: {e}");
                std::process::exit(1);
            }
        }
        _ = stop => {}
    }
}
