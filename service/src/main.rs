//! `switchboard-service`: runs the relay. See `switchboard-service --help`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use switchboard_service::{Command, Config, HELP, Relay};
use tokio::io::AsyncReadExt;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Config::from_args(args, |name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("switchboard-service: {error}");
            return ExitCode::from(2);
        }
    };
    let (config, stop_when_stdin_closes) = match command {
        Command::Help => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("switchboard-service {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run {
            config,
            stop_when_stdin_closes,
        } => (config, stop_when_stdin_closes),
    };
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    // A diagnostic (the test suites' secrets check reads it): everything from debug up, also
    // appended to a file of this process's own in that directory.
    let debug_file = std::env::var_os("SWITCHBOARD_DEBUG_LOG_DIR").and_then(|dir| {
        let path = std::path::Path::new(&dir).join(format!("switchboard-service-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
        )
    });
    tracing_subscriber::registry().with(stderr).with(debug_file).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard-service: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, stop_when_stdin_closes))
}

async fn run(config: Config, stop_when_stdin_closes: bool) -> ExitCode {
    let relay = match Relay::bind(config).await {
        Ok(relay) => relay,
        Err(error) => {
            eprintln!("switchboard-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "Now listening on: {}", relay.url());
    let _ = stdout.flush();
    tracing::info!(address = %relay.local_addr(), "relay started");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated() => {}
        _ = stdin_closed(), if stop_when_stdin_closes => {}
    }
    tracing::info!("relay stopping");
    relay.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM (never elsewhere).
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Resolves when standard input reaches end of file (or fails).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 1024];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}
