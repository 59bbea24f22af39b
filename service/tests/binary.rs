//! The `switchboard-service` binary: help, bad arguments, the listening line, and stopping
//! when standard input closes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard-service");

#[test]
fn binary_help_lists_every_setting() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text, switchboard_service::HELP);
    for setting in [
        "--listen",
        "--access-key",
        "SWITCHBOARD_ACCESS_KEYS",
        "max_clients_per_hub",
    ] {
        assert!(text.contains(setting), "{setting}");
    }
}

#[test]
fn binary_bad_arguments_exit_2() {
    let output = Command::new(BIN).arg("--nope").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument"));
    let output = Command::new(BIN)
        .env_remove("SWITCHBOARD_ACCESS_KEYS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "no access key");
}

#[tokio::test]
async fn binary_listens_and_stops_when_stdin_closes() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--stop-when-stdin-closes"])
        .env("SWITCHBOARD_ACCESS_KEYS", "secret-one,secret-two")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("Now listening on: http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: std::net::SocketAddr = url.parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    let health = common::http_to(addr, "GET", "/api/health", &[], b"").await;
    assert_eq!(health.text(), r#"{"status":"ok"}"#);
    // A refused token is logged without the token or the keys.
    let bad = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl";
    let refused = common::http_to(
        addr,
        "POST",
        "/client/negotiate?hub=chat",
        &[("Authorization", bad)],
        b"",
    )
    .await;
    assert_eq!(refused.status, 401);

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the relay did not stop when stdin closed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "exactly one line on stdout");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    for secret in ["secret-one", "secret-two", "c2lnbmF0dXJl"] {
        assert!(!logs.contains(secret), "logs leak {secret}: {logs}");
    }
}
