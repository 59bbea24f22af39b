//! Keeps the harness working: the smoke run end to end (every scenario and target, the Node.js
//! and socketioxide comparators included, against freshly built servers), the generator
//! catching lost messages in raw and Socket.IO modes, and a comparator that cannot start
//! failing the run instead of being skipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bench_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_switchboard-bench"))
}

/// The directory of this profile's binaries, with `conformance-server` and
/// `switchboard-service` (other packages of the workspace) built fresh in it.
fn bin_dir() -> PathBuf {
    let dir = bench_exe().parent().expect("binary directory").to_path_buf();
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--quiet",
        "-p",
        "conformance-server",
        "-p",
        "switchboard-service",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building the servers under test failed");
    for bin in [
        "conformance-server",
        "switchboard-service",
        "floor-server",
        "socketioxide-server",
    ] {
        assert!(dir.join(bin).is_file(), "{bin} missing in {}", dir.display());
    }
    dir
}

#[test]
fn smoke_run_covers_every_scenario_and_target() {
    let bins = bin_dir();
    let out = std::env::temp_dir().join(format!("switchboard-bench-smoke-{}", std::process::id()));
    let output = Command::new(bench_exe())
        .arg("run")
        .arg("--smoke")
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bins)
        .output()
        .expect("switchboard-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "smoke run failed:\n{stdout}\n{stderr}");
    let summary: Vec<&str> = stdout.lines().collect();
    assert_eq!(summary.len(), 1, "one summary line expected, got:\n{stdout}");
    assert!(summary[0].contains(", 0 failed"), "{stdout}");

    let jsonl = std::fs::read_to_string(out.join("results.jsonl")).expect("results.jsonl");
    let records: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let ran = |scenario: &str, target: &str| {
        records
            .iter()
            .any(|r| r["scenario"] == scenario && r["target"] == target && r["ok"] == true)
    };
    for scenario in ["echo", "echo-measure", "broadcast", "group", "open-loop", "idle"] {
        for target in ["floor", "direct-json", "relay-json"] {
            assert!(ran(scenario, target), "no successful {scenario} run on {target}");
        }
    }
    for target in ["direct-msgpack", "relay-msgpack"] {
        for scenario in ["echo", "open-loop"] {
            assert!(ran(scenario, target), "no successful {scenario} run on {target}");
        }
    }
    // the comparators: echo and broadcast through the raw and Socket.IO modes, idle memory
    for target in ["node-ws", "socketio", "socketioxide"] {
        for scenario in ["echo", "broadcast", "idle"] {
            assert!(ran(scenario, target), "no successful {scenario} run on {target}");
        }
    }
    // the relay cluster: cross-node broadcast and echo against one relay; idle connections
    // opened by several generator processes
    for scenario in ["echo", "broadcast", "cluster-idle"] {
        assert!(
            ran(scenario, "cluster-json"),
            "no successful {scenario} run on cluster-json"
        );
    }
    for r in records.iter().filter(|r| r["scenario"] == "cluster-idle") {
        assert!(r["relay_kb_per_conn"].as_f64().is_some(), "{r}");
        assert!(r["connect_rate"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in records
        .iter()
        .filter(|r| !["idle", "cluster-idle", "soak"].contains(&r["scenario"].as_str().unwrap()))
    {
        assert!(r["rate"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p99_us"].as_f64().unwrap() >= r["p50_us"].as_f64().unwrap(), "{r}");
        assert_eq!(r["lost"], 0, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
    }
    for r in records.iter().filter(|r| r["scenario"] == "open-loop") {
        assert_eq!(r["saturated"], false, "{r}");
        assert!(r["offered_rate"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(ran("migrate", "relay-json"), "no successful migrate run");
    for r in records.iter().filter(|r| r["scenario"] == "migrate") {
        assert!(r["migrate_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in records.iter().filter(|r| r["scenario"] == "idle") {
        assert!(r["kb_per_conn"].as_f64().is_some(), "{r}");
        assert!(r["connect_rate"].as_f64().unwrap() > 0.0, "{r}");
    }
    // the soak: connections held while others churn, the servers read meanwhile
    for target in ["direct-json", "relay-json"] {
        assert!(ran("soak", target), "no successful soak run on {target}");
    }
    for r in records.iter().filter(|r| r["scenario"] == "soak") {
        assert!(r["sent"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["lost"], 0, "{r}");
        let samples = r["soak_samples"].as_array().unwrap();
        assert!(samples.len() >= 2, "{r}");
        assert!(
            samples
                .iter()
                .all(|x| x["rss_kb"].as_u64().is_some() && x["fds"].as_u64().is_some()),
            "{r}"
        );
    }
    let summary_md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(summary_md.contains("## Soak"), "{summary_md}");
    assert!(summary_md.contains("## Against the targets"));
    assert!(summary_md.contains("## Client migration"), "{summary_md}");
    assert!(
        summary_md.contains("## Relay cluster: three nodes against one relay"),
        "{summary_md}"
    );
    assert!(
        summary_md.contains("## Relay cluster: idle connections"),
        "{summary_md}"
    );
    assert!(summary_md.contains("Comparators, echo msgs/s"), "{summary_md}");
    assert!(
        summary_md.contains("Comparators, broadcast deliveries/s"),
        "{summary_md}"
    );
    assert!(
        summary_md.contains("| direct-json | ≥ 20 (the most tried)"),
        "{summary_md}"
    );
    assert!(summary_md.contains("## Open loop"), "{summary_md}");
    let svg = std::fs::read_to_string(out.join("chart.svg")).expect("chart.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("socketioxide") && svg.contains("Open loop"), "{svg}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs a broadcast through a server started as `server args` (it prints its listening line
/// and stops when its standard input closes) and returns the generator's result.
fn broadcast_through(server: &Path, args: &[&str], mode: &str) -> serde_json::Value {
    let mut server = Command::new(server)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("Now listening on: ")
        .expect("listening line")
        .to_owned();
    let spec = serde_json::json!({
        "scenario": "broadcast", "mode": mode, "url": url, "conns": 5, "payload": 16,
        "warmup_ms": 20, "duration_ms": 150, "window": 2, "connect_concurrency": 5, "drain_ms": 500
    });
    let output = Command::new(bench_exe())
        .arg("load")
        .arg(spec.to_string())
        .output()
        .expect("generator runs");
    drop(server.stdin.take());
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .unwrap_or_else(|| panic!("no result line in {stdout}"));
    serde_json::from_str(result).unwrap()
}

#[test]
fn lost_broadcasts_are_reported() {
    let floor = bench_exe().parent().unwrap().join("floor-server");
    let args = ["--port", "0", "--stop-when-stdin-closes", "--drop-every", "7"];
    let result = broadcast_through(&floor, &args, "raw");
    assert!(result["lost"].as_u64().unwrap() > 0, "losses not seen: {result}");
    assert!(result["sent"].as_u64().unwrap() > 0, "{result}");
    // the same server without drops loses nothing
    let result = broadcast_through(&floor, &args[..3], "raw");
    assert_eq!(result["lost"], 0, "{result}");
}

#[test]
fn lost_socketio_broadcasts_are_reported() {
    let server = bench_exe().parent().unwrap().join("socketioxide-server");
    let args = ["--port", "0", "--stop-when-stdin-closes", "--drop-every", "7"];
    let result = broadcast_through(&server, &args, "socketio");
    assert!(result["lost"].as_u64().unwrap() > 0, "losses not seen: {result}");
    assert!(result["sent"].as_u64().unwrap() > 0, "{result}");
    let result = broadcast_through(&server, &args[..3], "socketio");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["errors"], 0, "{result}");
}

#[test]
fn a_comparator_that_cannot_start_fails_the_run() {
    let out = std::env::temp_dir().join(format!("switchboard-bench-nonode-{}", std::process::id()));
    // no node: an error naming what to install, not a skipped target
    let output = Command::new(bench_exe())
        .args(["run", "--smoke", "--targets", "floor,socketio", "--scenarios", "echo"])
        .arg("--node")
        .arg("/nonexistent/node")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("switchboard-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("error") && stdout.contains("Node.js"), "{stdout}");
    // no socketioxide-server binary
    let empty = out.join("no-binaries");
    std::fs::create_dir_all(&empty).unwrap();
    let output = Command::new(bench_exe())
        .args(["run", "--smoke", "--targets", "socketioxide", "--scenarios", "echo"])
        .arg("--bin-dir")
        .arg(&empty)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("switchboard-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("socketioxide-server not found"), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
