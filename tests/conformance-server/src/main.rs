//! `conformance-server`: the test server behind Switchboard's conformance suites.
//!
//! It exposes the surface of the app behind the official TypeScript client's functional
//! tests, plus hubs for groups, users and broadcast (see `docs/CONFORMANCE.md`). Routes and
//! method names are a contract other test suites rely on.
//!
//! ```text
//! conformance-server [--port N] [--service "<connection string>"] [--app-name NAME]
//!                    [--server-name NAME] [--redis URL] [--stop-when-stdin-closes]
//! ```
//!
//! In service mode the other `ServiceOptions` come from `Azure__SignalR__…` environment
//! variables; named endpoints among them (`Azure__SignalR__ConnectionString__{Name}__{Type}`)
//! put it in service mode without `--service` too. `--redis URL` shares the self-hosted hubs
//! with every other server on that Redis (the backplane, as ASP.NET Core's). SIGINT and SIGTERM shut it down as `GracefulShutdown` says; it then exits 0.

use conformance_server::{AppState, build_app};

struct Args {
    port: u16,
    service: Option<String>,
    app_name: Option<String>,
    server_name: Option<String>,
    redis: Option<String>,
    stop_when_stdin_closes: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: conformance-server [--port N] [--service \"<connection string>\"] [--app-name NAME] [--server-name NAME] [--redis URL] [--stop-when-stdin-closes]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        service: None,
        app_name: None,
        server_name: None,
        redis: None,
        stop_when_stdin_closes: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => args.port = it.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--service" => args.service = Some(it.next().unwrap_or_else(|| usage())),
            "--app-name" => args.app_name = Some(it.next().unwrap_or_else(|| usage())),
            "--server-name" => args.server_name = Some(it.next().unwrap_or_else(|| usage())),
            "--redis" => args.redis = Some(it.next().unwrap_or_else(|| usage())),
            "--stop-when-stdin-closes" => args.stop_when_stdin_closes = true,
            "--help" | "-h" => usage(),
            other => {
                eprintln!("unknown argument: {other}");
                usage()
            }
        }
    }
    args
}

#[tokio::main]
async fn main() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    // For the suites' secrets check: debug and up, also in a file of this process's own.
    let debug_file = std::env::var_os("SWITCHBOARD_DEBUG_LOG_DIR").and_then(|dir| {
        let name = format!("conformance-server-{}.log", std::process::id());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join(name))
            .ok()?;
        let layer = tracing_subscriber::fmt::layer().with_writer(std::sync::Mutex::new(file));
        Some(
            layer
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
        )
    });
    tracing_subscriber::registry().with(stderr).with(debug_file).init();
    let args = parse_args();
    let state = match &args.server_name {
        Some(name) => AppState::with_server_name(name),
        None => AppState::new(),
    };
    // Service mode: the flags, and every other option from the environment; named endpoints
    // there (`Azure__SignalR__ConnectionString__{Name}__{Type}`) turn it on too.
    let mut options = switchboard::service::ServiceOptions::from_env();
    let service = (args.service.is_some() || !options.endpoints.is_empty()).then(|| {
        if let Some(connection_string) = &args.service {
            options.connection_string = Some(connection_string.clone());
        }
        if let Some(app_name) = &args.app_name {
            options.application_name = Some(app_name.clone());
        }
        options.server_name = args.server_name.clone();
        options
    });
    let (router, running) = match build_app(&state, service, args.redis.clone()) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("configuration error: {error}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {error}", args.port);
            std::process::exit(1);
        }
    };
    // In service mode, announce the port once negotiate can send clients to the service.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), running.connected()).await;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    println!("Now listening on: http://127.0.0.1:{port}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let stop_when_stdin_closes = args.stop_when_stdin_closes;
    let shutdown = async move {
        tokio::select! {
            () = signalled() => {}
            () = stdin_closed(), if stop_when_stdin_closes => {}
        }
    };
    let serving = tokio::spawn(async move { switchboard::serve(listener, router).await });
    tokio::select! {
        () = shutdown => {}
        served = serving => {
            match served {
                Ok(Err(error)) => eprintln!("server error: {error}"),
                _ => eprintln!("the server stopped"),
            }
            std::process::exit(1);
        }
    }
    // Negotiate goes on being answered while the hubs shut down (in service mode the
    // relay sends this server no new clients once it is told); then the process ends,
    // whatever connections are still open.
    running.shutdown().await;
    std::process::exit(0);
}

/// Resolves on SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        eprintln!("cannot listen for signals");
        std::process::exit(1);
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Resolves when standard input reaches its end (the parent process has gone).
async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
}
