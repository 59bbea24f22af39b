//! Keeps the harness working: the smoke run end to end (every scenario and target, against
//! freshly built servers), and the generator catching lost messages.

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
    for bin in ["conformance-server", "switchboard-service", "floor-server"] {
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
    for scenario in ["echo", "echo-measure", "broadcast", "group", "idle"] {
        for target in ["floor", "direct-json", "relay-json"] {
            assert!(
                records
                    .iter()
                    .any(|r| r["scenario"] == scenario && r["target"] == target && r["ok"] == true),
                "no successful {scenario} run on {target}"
            );
        }
    }
    for target in ["direct-msgpack", "relay-msgpack"] {
        assert!(records.iter().any(|r| r["target"] == target && r["scenario"] == "echo"));
    }
    for r in records.iter().filter(|r| r["scenario"] != "idle") {
        assert!(r["rate"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p99_us"].as_f64().unwrap() >= r["p50_us"].as_f64().unwrap(), "{r}");
        assert_eq!(r["lost"], 0, "{r}");
    }
    let summary_md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(summary_md.contains("## Against the targets"));
    let svg = std::fs::read_to_string(out.join("chart.svg")).expect("chart.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn lost_broadcasts_are_reported() {
    let floor = bench_exe().parent().unwrap().join("floor-server");
    let mut server = Command::new(&floor)
        .args(["--port", "0", "--stop-when-stdin-closes", "--drop-every", "7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("floor-server starts");
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
        "scenario": "broadcast", "mode": "raw", "url": url, "conns": 5, "payload": 16,
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
    let result: serde_json::Value = serde_json::from_str(result).unwrap();
    assert!(result["lost"].as_u64().unwrap() > 0, "losses not seen: {result}");
    assert!(result["sent"].as_u64().unwrap() > 0, "{result}");
}
