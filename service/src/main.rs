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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
