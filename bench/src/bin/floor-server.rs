//! `floor-server`: the raw tokio-tungstenite echo/broadcast server the benchmark compares the
//! hub with (see `switchboard_bench::floor`).
//!
//! ```text
//! floor-server [--port N] [--stop-when-stdin-closes] [--drop-every N]
//! ```
//!
//! `--drop-every N` makes every connection skip every N-th broadcast frame: fault injection
//! that the harness's tests use to check that losses are caught.
//!
//! Listens on 127.0.0.1 and prints `Now listening on: http://127.0.0.1:<port>` once it accepts.

use std::io::Write as _;
use std::sync::Arc;

use switchboard_bench::floor::{FloorStats, serve};

fn usage() -> ! {
    eprintln!("usage: floor-server [--port N] [--stop-when-stdin-closes] [--drop-every N]");
    std::process::exit(2);
}

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
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("floor-server: cannot listen on 127.0.0.1:{port}: {error}");
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("Now listening on: http://127.0.0.1:{port}");
    let _ = std::io::stdout().flush();
    let stats = Arc::new(FloorStats {
        drop_every,
        ..FloorStats::default()
    });
    let stop = async {
        if stop_when_stdin_closes {
            let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    tokio::select! {
        _ = serve(listener, stats.clone()) => {}
        _ = stop => {}
    }
    let lagged = stats.lagged.load(std::sync::atomic::Ordering::Relaxed);
    if lagged > 0 {
        eprintln!("floor-server: {lagged} broadcast frames dropped by lagging connections");
    }
}
