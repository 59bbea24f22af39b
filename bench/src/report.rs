//! Turning records into `summary.md` (tables with median and range, ratios against the floor
//! and relay against direct, checked against the project's targets) and `chart.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Record, Target};
use crate::procstat;

/// Where and how a run happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    /// Seconds since the Unix epoch at the start.
    pub started_unix: u64,
    /// CPU model.
    pub cpu: String,
    /// CPUs available.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average at the start.
    pub loadavg_start: Option<f64>,
    /// CPU the servers were pinned to.
    pub server_cpu: Option<u32>,
    /// CPU the generator was pinned to.
    pub loadgen_cpu: Option<u32>,
    /// `git rev-parse --short HEAD` of the working directory, if any.
    pub commit: Option<String>,
}

impl Environment {
    /// Reads the machine's description now.
    pub fn capture(server_cpu: Option<u32>, loadgen_cpu: Option<u32>) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        Self {
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cpu,
            cpus: procstat::allowed_cpus().len(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            loadavg_start: procstat::loadavg_1m(),
            server_cpu,
            loadgen_cpu,
            commit,
        }
    }
}

/// Median, smallest and largest of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Stat {
    /// `None` for an empty sample.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Human-friendly number: `950`, `12.3k`, `177k`, `1.25M`.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e5 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn med_range(s: Option<Stat>) -> String {
    match s {
        Some(s) if s.min == s.max => num(s.median),
        Some(s) => format!("{} ({}–{})", num(s.median), num(s.min), num(s.max)),
        None => "—".into(),
    }
}

fn med(s: Option<Stat>) -> String {
    s.map_or("—".into(), |s| num(s.median))
}

/// The median rate of a group, marked † when the generator was saturated (median ≥ 90%).
fn rate_cell(g: &BTreeMap<Key, Vec<&Record>>, k: &Key) -> String {
    let rate = stat_of(g, k, |r| Some(r.rate));
    let gen_busy = stat_of(g, k, |r| Some(r.loadgen_cpu_pct)).is_some_and(|s| s.median >= 90.0);
    format!("{}{}", med(rate), if gen_busy && rate.is_some() { " †" } else { "" })
}

/// One line per record for the console.
pub fn progress_line(r: &Record) -> String {
    let what = match r.scenario.as_str() {
        "idle" => format!(
            "{:.2} KB/conn{}, {} connects/s",
            r.kb_per_conn.unwrap_or(f64::NAN),
            r.relay_kb_per_conn
                .map_or(String::new(), |k| format!(" (relay {k:.2} KB/conn)")),
            r.connect_rate.map_or("?".into(), num)
        ),
        "soak" => {
            let rss = |process: &str| {
                let readings: Vec<u64> = r
                    .soak_samples
                    .iter()
                    .filter(|s| s.process == process)
                    .filter_map(|s| s.rss_kb)
                    .collect();
                match (readings.first(), readings.last()) {
                    (Some(a), Some(b)) => format!(" {process} RSS {} → {} MiB", a / 1024, b / 1024),
                    _ => String::new(),
                }
            };
            format!(
                "{} echoes of churning clients, {} lost, {} errors;{}{}",
                r.sent,
                r.lost,
                r.errors,
                rss("conformance-server"),
                rss("switchboard-service")
            )
        }
        "migrate" => format!(
            "moved in {} ms; latency meanwhile p50 {} µs p99 {} µs max {} µs, {} lost, {} errors",
            r.migrate_ms.map_or("?".into(), num),
            num(r.p50_us),
            num(r.p99_us),
            num(r.max_us),
            r.lost,
            r.errors
        ),
        "open-loop" => format!(
            "offered {}/s, answered {}/s, p50 {} µs p99 {} µs max {} µs, {} lost, server {} µs/msg, generator CPU {:.0}%{}",
            r.offered_rate.map_or("?".into(), num),
            num(r.rate),
            num(r.p50_us),
            num(r.p99_us),
            num(r.max_us),
            r.lost,
            r.cpu_us_per_msg.map_or("?".into(), num),
            r.loadgen_cpu_pct,
            if r.saturated {
                " — saturated (p99 ≥ 1 s): the ramp stops"
            } else {
                ""
            }
        ),
        _ => format!(
            "{}/s p50 {} µs p99 {} µs, server {} µs/msg, generator CPU {:.0}%",
            num(r.rate),
            num(r.p50_us),
            num(r.p99_us),
            r.cpu_us_per_msg.map_or("?".into(), num),
            r.loadgen_cpu_pct
        ),
    };
    format!(
        "[{}] rep {} {} {}: {} conns, {} B: {}{}",
        if r.ok { "ok" } else { "FAIL" },
        r.rep,
        r.scenario,
        r.target,
        r.conns,
        r.payload,
        what,
        r.error.as_ref().map_or(String::new(), |e| format!(" — {e}"))
    ) + &match (r.disturbed, r.superseded) {
        (true, true) => format!(
            " [other processes {:.0}% of a core: repeating]",
            r.other_cpu_pct.unwrap_or(0.0)
        ),
        (true, false) => format!(" [other processes {:.0}% of a core]", r.other_cpu_pct.unwrap_or(0.0)),
        _ => String::new(),
    }
}

type Key = (String, usize, usize, String);

/// The successful records of each (scenario, payload, conns, target).
fn groups(records: &[Record]) -> BTreeMap<Key, Vec<&Record>> {
    let mut g: BTreeMap<Key, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.ok && !r.superseded) {
        g.entry((r.scenario.clone(), r.payload, r.conns, r.target.clone()))
            .or_default()
            .push(r);
    }
    g
}

fn stat_of(g: &BTreeMap<Key, Vec<&Record>>, k: &Key, f: impl Fn(&Record) -> Option<f64>) -> Option<Stat> {
    g.get(k).and_then(|rs| Stat::of(rs.iter().filter_map(|r| f(r))))
}

fn key(scenario: &str, payload: usize, conns: usize, target: &str) -> Key {
    (scenario.to_owned(), payload, conns, target.to_owned())
}

fn ratio(a: Option<Stat>, b: Option<Stat>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

fn verdict(r: Option<f64>, target: f64) -> String {
    match r {
        Some(r) => format!("{:.0}% {}", r * 100.0, if r >= target { "✅" } else { "❌" }),
        None => "—".into(),
    }
}

/// The points of a scenario present in the records, in order.
fn points(records: &[Record], scenario: &str) -> Vec<(usize, usize)> {
    let mut p: Vec<(usize, usize)> = records
        .iter()
        .filter(|r| r.scenario == scenario)
        .map(|r| (r.payload, r.conns))
        .collect();
    p.sort();
    p.dedup();
    p
}

fn target_names(records: &[Record]) -> Vec<String> {
    Target::ALL
        .iter()
        .map(|t| t.name())
        .filter(|n| records.iter().any(|r| &r.target == n))
        .collect()
}

/// Rewrites `summary.md` and `chart.svg` of a finished run from its `results.jsonl` and
/// `run.json` (after the report code changed, or to merge runs by concatenating their lines).
pub fn regenerate(dir: &Path) -> Result<usize, String> {
    let jsonl = std::fs::read_to_string(dir.join("results.jsonl")).map_err(|e| format!("results.jsonl: {e}"))?;
    let records: Vec<Record> = jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("results.jsonl: {e}")))
        .collect::<Result<_, _>>()?;
    let run: serde_json::Value = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let plan: Plan = serde_json::from_value(run["plan"].clone()).unwrap_or_default();
    let env: Environment = serde_json::from_value(run["environment"].clone()).unwrap_or_default();
    let wall = run["wall_secs"].as_f64().unwrap_or(f64::NAN);
    write_all(dir, &plan, &env, &records, wall)?;
    Ok(records.len())
}

/// Writes `summary.md` and `chart.svg` into `out`.
pub fn write_all(out: &Path, plan: &Plan, env: &Environment, records: &[Record], wall_secs: f64) -> Result<(), String> {
    let md = markdown(plan, env, records, wall_secs);
    std::fs::write(out.join("summary.md"), md).map_err(|e| format!("summary.md: {e}"))?;
    std::fs::write(out.join("chart.svg"), svg(records)).map_err(|e| format!("chart.svg: {e}"))?;
    Ok(())
}

/// The Markdown report.
pub fn markdown(plan: &Plan, env: &Environment, records: &[Record], wall_secs: f64) -> String {
    let g = groups(records);
    let targets = target_names(records);
    let mut s = String::new();
    let _ = writeln!(s, "# Switchboard benchmark results\n");
    let failed = records.iter().filter(|r| !r.ok).count();
    let _ = writeln!(
        s,
        "- {} runs ({} failed) in {:.0} s; {} repetition(s), warm-up {} ms, window {} ms, broadcast window {} in flight",
        records.len(),
        failed,
        wall_secs,
        plan.reps,
        plan.warmup_ms,
        plan.duration_ms,
        plan.window
    );
    let _ = writeln!(
        s,
        "- machine: {} × {}, kernel {}; started at Unix time {}{}",
        env.cpus,
        env.cpu,
        env.kernel,
        env.started_unix,
        env.commit.as_ref().map_or(String::new(), |c| format!(", commit {c}"))
    );
    let _ = writeln!(
        s,
        "- pinning: {}",
        match (env.loadgen_cpu, env.server_cpu) {
            (Some(l), Some(sv)) => format!(
                "generator on CPU {l}, servers on CPU {sv} (`taskset`; in the relay deployment the relay and the hub share CPU {sv})"
            ),
            _ => "none (taskset missing or fewer than 2 CPUs): servers and generator share the cores".into(),
        }
    );
    let loads = Stat::of(records.iter().filter_map(|r| r.loadavg_1m));
    let _ = writeln!(
        s,
        "- 1-minute load average: {:.2} at the start; {} over the runs (the benchmark itself keeps both cores busy, so read the interference line below rather than this)",
        env.loadavg_start.unwrap_or(f64::NAN),
        loads.map_or("—".into(), |l| format!(
            "median {:.2}, {:.2}–{:.2}",
            l.median, l.min, l.max
        ))
    );
    let other = Stat::of(records.iter().filter(|r| !r.superseded).filter_map(|r| r.other_cpu_pct));
    let repeated = records.iter().filter(|r| r.superseded).count();
    let kept_disturbed = records.iter().filter(|r| r.disturbed && !r.superseded).count();
    let waited: f64 = records.iter().map(|r| r.waited_secs).sum();
    let _ = writeln!(
        s,
        "- interference: before each run the harness waits until other processes use at most {}% of a core \
         ({waited:.0} s waited in all); {repeated} run(s) repeated because they used more during the window \
         (kept in results.jsonl as `superseded`); {kept_disturbed} run(s) in the tables still disturbed after {} attempts",
        crate::plan::INTERFERENCE_PCT,
        crate::plan::ATTEMPTS
    );
    let _ = writeln!(
        s,
        "- CPU used by anything but the servers and the generator during the windows in the tables (% of one core): {}\n",
        other.map_or("—".into(), |o| format!(
            "median {:.1}%, {:.1}–{:.1}%",
            o.median, o.min, o.max
        ))
    );
    let _ = writeln!(
        s,
        "Cells show the median over repetitions and, in parentheses, the range. Latencies are medians of each run's percentile, in µs. \
         Server CPU is utime+stime of every server process (relay + hub in the relay deployment) over the window, per message. \
         † marks a median whose runs had the generator at ≥ 90% of its core: that rate is bounded by the generator, so a floor \
         value marked † understates the floor (and ratios against it flatter the hub)."
    );

    // targets
    let _ = writeln!(s, "\n## Against the targets\n");
    let echo_points = points(records, "echo");
    if !echo_points.is_empty() {
        let _ = writeln!(
            s,
            "Echo msgs/s: direct ≥ 70% of the floor, relay ≥ 60% of direct.\n\n\
             | payload | conns | floor | direct-json | json/floor | direct-msgpack | msgpack/floor | relay-json | relay/direct json | relay-msgpack | relay/direct msgpack |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for &(payload, conns) in &echo_points {
            let st = |t: &str| stat_of(&g, &key("echo", payload, conns, t), |r| Some(r.rate));
            let (f, dj, dm, rj, rm) = (
                st("floor"),
                st("direct-json"),
                st("direct-msgpack"),
                st("relay-json"),
                st("relay-msgpack"),
            );
            let _ = writeln!(
                s,
                "| {} | {conns} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                size(payload),
                rate_cell(&g, &key("echo", payload, conns, "floor")),
                rate_cell(&g, &key("echo", payload, conns, "direct-json")),
                verdict(ratio(dj, f), 0.7),
                rate_cell(&g, &key("echo", payload, conns, "direct-msgpack")),
                verdict(ratio(dm, f), 0.7),
                rate_cell(&g, &key("echo", payload, conns, "relay-json")),
                verdict(ratio(rj, dj), 0.6),
                rate_cell(&g, &key("echo", payload, conns, "relay-msgpack")),
                verdict(ratio(rm, dm), 0.6)
            );
        }
    }
    let bc_points = points(records, "broadcast");
    if !bc_points.is_empty() {
        let _ = writeln!(
            s,
            "\nBroadcast deliveries/s: direct ≥ 80% of the floor (the target is stated for 10k receivers), relay ≥ 80% of direct.\n\n\
             | payload | receivers | floor | direct-json | json/floor | direct-msgpack | msgpack/floor | relay-json | relay/direct json | relay-msgpack | relay/direct msgpack |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for &(payload, conns) in &bc_points {
            let st = |t: &str| stat_of(&g, &key("broadcast", payload, conns, t), |r| Some(r.rate));
            let (f, dj, dm, rj, rm) = (
                st("floor"),
                st("direct-json"),
                st("direct-msgpack"),
                st("relay-json"),
                st("relay-msgpack"),
            );
            let _ = writeln!(
                s,
                "| {} | {conns} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                size(payload),
                rate_cell(&g, &key("broadcast", payload, conns, "floor")),
                rate_cell(&g, &key("broadcast", payload, conns, "direct-json")),
                verdict(ratio(dj, f), 0.8),
                rate_cell(&g, &key("broadcast", payload, conns, "direct-msgpack")),
                verdict(ratio(dm, f), 0.8),
                rate_cell(&g, &key("broadcast", payload, conns, "relay-json")),
                verdict(ratio(rj, dj), 0.8),
                rate_cell(&g, &key("broadcast", payload, conns, "relay-msgpack")),
                verdict(ratio(rm, dm), 0.8)
            );
        }
    }
    let idle_points = points(records, "idle");
    if !idle_points.is_empty() {
        let comparators: Vec<&str> = ["node-ws", "socketio", "socketioxide"]
            .into_iter()
            .filter(|t| records.iter().any(|r| r.scenario == "idle" && r.target == *t))
            .collect();
        let _ = writeln!(
            s,
            "\nIdle memory, KB (1000 B) of RSS per connection: ≤ 10 at the hub server and at the relay, ≤ 2 per tunnelled client at the app server behind the relay{}.\n\n\
             | conns | floor | direct hub | relay deployment: hub | relay deployment: relay |{}\n|---|---|---|---|---|{}",
            if comparators.is_empty() {
                ""
            } else {
                " (the comparators for reference; a Node.js process's RSS is its heap as the garbage collector left it)"
            },
            comparators.iter().map(|c| format!(" {c} |")).collect::<String>(),
            "---|".repeat(comparators.len())
        );
        let check = |st: Option<Stat>, target: f64| match st {
            Some(st) => format!("{} {}", num(st.median), if st.median <= target { "✅" } else { "❌" }),
            None => "—".into(),
        };
        for &(_, conns) in &idle_points {
            let st = |t: &str, f: fn(&Record) -> Option<f64>| stat_of(&g, &key("idle", 0, conns, t), f);
            let _ = writeln!(
                s,
                "| {conns} | {} | {} | {} | {} |{}",
                med(st("floor", |r| r.kb_per_conn)),
                check(st("direct-json", |r| r.kb_per_conn), 10.0),
                check(st("relay-json", |r| r.kb_per_conn), 2.0),
                check(st("relay-json", |r| r.relay_kb_per_conn), 10.0),
                comparators
                    .iter()
                    .map(|c| format!(" {} |", med(st(c, |r| r.kb_per_conn))))
                    .collect::<String>()
            );
        }
    }
    comparator_tables(&mut s, &g, records);
    open_loop_summary(&mut s, records);

    // details
    for (scenario, title, unit) in [
        (
            "echo",
            "Echo: closed loop, one `Echo(ticks, payload)` in flight per connection",
            "msgs/s",
        ),
        (
            "echo-measure",
            "Echo through a client method: `EchoMeasure(ticks, payload)` answered by `Measure` on the caller",
            "msgs/s",
        ),
        (
            "broadcast",
            "Broadcast: `BroadcastMeasure` from one connection, `Measure` to every connection",
            "deliveries/s",
        ),
        (
            "group",
            "Group: everyone joins one group, `GroupMeasure` from one connection (the floor: a plain broadcast)",
            "deliveries/s",
        ),
    ] {
        let pts = points(records, scenario);
        if pts.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\n## {title}\n\n| payload | conns | target | {unit} | p50 | p99 | p99.9 | server CPU µs/msg | (relay + hub) | server CPU % | generator CPU % | runs ok |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for &(payload, conns) in &pts {
            for t in &targets {
                let k = key(scenario, payload, conns, t);
                let all = records
                    .iter()
                    .filter(|r| {
                        r.scenario == scenario
                            && r.payload == payload
                            && r.conns == conns
                            && &r.target == t
                            && !r.superseded
                    })
                    .count();
                if all == 0 {
                    continue;
                }
                let ok = g.get(&k).map_or(0, Vec::len);
                let split = match (
                    stat_of(&g, &k, |r| r.relay_cpu_us_per_msg),
                    stat_of(&g, &k, |r| r.hub_cpu_us_per_msg),
                ) {
                    (Some(r), Some(h)) => format!("{} + {}", num(r.median), num(h.median)),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {conns} | {t} | {} | {} | {} | {} | {} | {split} | {} | {} | {ok}/{all} |",
                    size(payload),
                    med_range(stat_of(&g, &k, |r| Some(r.rate))),
                    med(stat_of(&g, &k, |r| Some(r.p50_us))),
                    med(stat_of(&g, &k, |r| Some(r.p99_us))),
                    med(stat_of(&g, &k, |r| Some(r.p999_us))),
                    med_range(stat_of(&g, &k, |r| r.cpu_us_per_msg)),
                    med(stat_of(&g, &k, |r| r.server_cpu_pct)),
                    med(stat_of(&g, &k, |r| Some(r.loadgen_cpu_pct))),
                );
            }
        }
    }
    if !idle_points.is_empty() {
        let _ = writeln!(
            s,
            "\n## Idle memory: connections opened (SignalR handshake done) and held\n\n\
             | conns | target | server KB/conn | relay KB/conn | server RSS before → after (MiB) | relay RSS before → after (MiB) | connect time s | connects/s | runs ok |\n|---|---|---|---|---|---|---|---|---|"
        );
        let mib = |b: Option<u64>, a: Option<u64>| match (b, a) {
            (Some(b), Some(a)) => format!("{:.1} → {:.1}", b as f64 / 1024.0, a as f64 / 1024.0),
            _ => String::new(),
        };
        for &(_, conns) in &idle_points {
            for t in &targets {
                let k = key("idle", 0, conns, t);
                let rs: Vec<&Record> = records
                    .iter()
                    .filter(|r| r.scenario == "idle" && r.conns == conns && &r.target == t)
                    .collect();
                let Some(last) = rs.iter().rev().find(|r| r.ok).or(rs.last()) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "| {conns} | {t} | {} | {} | {} | {} | {} | {} | {}/{} |",
                    med_range(stat_of(&g, &k, |r| r.kb_per_conn)),
                    med_range(stat_of(&g, &k, |r| r.relay_kb_per_conn)),
                    mib(last.rss_before_kb, last.rss_after_kb),
                    mib(last.relay_rss_before_kb, last.relay_rss_after_kb),
                    med(stat_of(&g, &k, |r| Some(r.connect_secs))),
                    med_range(stat_of(&g, &k, |r| r.connect_rate)),
                    g.get(&k).map_or(0, Vec::len),
                    rs.len()
                );
            }
        }
    }
    open_loop_details(&mut s, &targets, records);
    migration_table(&mut s, records);
    cluster_tables(&mut s, &g, records);
    soak_table(&mut s, records);
    let failures: Vec<&Record> = records.iter().filter(|r| !r.ok).collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\n## Failed runs\n");
        for r in failures {
            let _ = writeln!(s, "- {}", progress_line(r));
        }
    }
    s
}

/// A cost ratio against its bound: lower is better.
fn at_most(r: Option<f64>, bound: f64) -> String {
    match r {
        Some(r) => format!("{r:.2}× {}", if r <= bound { "✅" } else { "❌" }),
        None => "—".into(),
    }
}

/// The relay cluster against one relay: cross-node broadcast cost and latency, and the idle
/// connections a cluster of several processes holds.
fn cluster_tables(s: &mut String, g: &BTreeMap<Key, Vec<&Record>>, records: &[Record]) {
    let broadcast: Vec<(usize, usize)> = points(records, "broadcast")
        .into_iter()
        .filter(|&(payload, conns)| g.contains_key(&key("broadcast", payload, conns, "cluster-json")))
        .collect();
    if !broadcast.is_empty() {
        let _ = writeln!(
            s,
            "\n## Relay cluster: three nodes against one relay\n\n\
             Broadcasts from one client; negotiate spreads the receivers over the nodes, each node \
             its own process, all on one core: so the cost, not the speed, is compared. *CPU* is \
             the servers' µs per delivery, summed over the relay nodes, the app server and (in the \
             cluster) redis-server; the targets are at most 1.5× one relay's CPU and 2× its p99.\n\n\
             | payload | receivers | relay deliveries/s | cluster deliveries/s | relay CPU µs | cluster CPU µs | of which Redis | CPU ratio | relay p99 | cluster p99 | p99 ratio |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for (payload, conns) in broadcast {
            let relay = key("broadcast", payload, conns, "relay-json");
            let cluster = key("broadcast", payload, conns, "cluster-json");
            let cpu = |k: &Key| stat_of(g, k, |r| r.cpu_us_per_msg);
            let p99 = |k: &Key| stat_of(g, k, |r| Some(r.p99_us));
            let _ = writeln!(
                s,
                "| {} | {conns} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                size(payload),
                rate_cell(g, &relay),
                rate_cell(g, &cluster),
                med_range(cpu(&relay)),
                med_range(cpu(&cluster)),
                med(stat_of(g, &cluster, |r| r.redis_cpu_us_per_msg)),
                at_most(ratio(cpu(&cluster), cpu(&relay)), 1.5),
                med(p99(&relay)),
                med(p99(&cluster)),
                at_most(ratio(p99(&cluster), p99(&relay)), 2.0),
            );
        }
    }
    let idle: Vec<&Record> = records.iter().filter(|r| r.scenario == "cluster-idle").collect();
    if !idle.is_empty() {
        let _ = writeln!(
            s,
            "\n## Relay cluster: idle connections over several relay processes\n\n\
             Several generator processes open the connections at once through one app server; \
             negotiate spreads them over the nodes. *Relay KB/conn* is the growth of the nodes' \
             RSS summed, per connection.\n\n\
             | conns | rep | relay KB/conn | app server KB/conn | relays' RSS after (MiB) | connect s | connects/s | ok |\n\
             |---|---|---|---|---|---|---|---|"
        );
        for r in idle {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.conns,
                r.rep,
                r.relay_kb_per_conn.map_or("—".into(), num),
                r.kb_per_conn.map_or("—".into(), num),
                r.relay_rss_after_kb.map_or("—".into(), |kb| num(kb as f64 / 1024.0)),
                num(r.connect_secs),
                r.connect_rate.map_or("—".into(), num),
                if r.ok { "✅" } else { "❌" }
            );
        }
    }
}

/// Client migration: how long the old app server took to hand every client over, and what
/// the clients' open-loop requests saw meanwhile.
fn migration_table(s: &mut String, records: &[Record]) {
    let runs: Vec<&Record> = records
        .iter()
        .filter(|r| r.scenario == "migrate" && !r.superseded)
        .collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Client migration: an app server shuts down with `MigrateClients`\n\n\
         Every client starts on the old server and sends `Echo` at a fixed rate; once the warm-up \
         is over the old server gets SIGINT. *Moved in* is from the signal until it exited (every \
         client on the new server, its invocations finished); the latencies are of the window, \
         which spans the move.\n\n\
         | conns | target | rep | moved in (ms) | requests/s | p50 | p99 | max | lost | errors | ok |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.conns,
            r.target,
            r.rep,
            r.migrate_ms.map_or("—".into(), num),
            num(r.rate),
            num(r.p50_us),
            num(r.p99_us),
            num(r.max_us),
            r.lost,
            r.errors,
            if r.ok { "✅" } else { "❌" }
        );
    }
}

/// Open loop, one target: the most connections whose runs all succeeded below each latency
/// bound (every smaller count tried passing too), and the most tried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenLoopLimits {
    /// Largest N with p99 < 1 s.
    pub bound: Option<usize>,
    /// Largest N with p99 < 100 ms.
    pub strict: Option<usize>,
    /// Smallest N tried.
    pub first: usize,
    /// Largest N tried.
    pub tried: usize,
}

/// The open-loop limits of `target` from its non-superseded open-loop records.
pub fn open_loop_limits(records: &[Record], target: &str) -> OpenLoopLimits {
    let mut by_n: BTreeMap<usize, Vec<&Record>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.scenario == "open-loop" && r.target == target && !r.superseded)
    {
        by_n.entry(r.conns).or_default().push(r);
    }
    let passes = |rs: &[&Record], bound: f64| {
        rs.iter().all(|r| r.ok && !r.saturated)
            && Stat::of(rs.iter().map(|r| r.p99_us)).is_some_and(|p| p.median < bound)
    };
    let largest = |bound: f64| {
        let mut best = None;
        for (&n, rs) in &by_n {
            if !passes(rs, bound) {
                break;
            }
            best = Some(n);
        }
        best
    };
    OpenLoopLimits {
        bound: largest(crate::plan::OPEN_LOOP_BOUND_US),
        strict: largest(crate::plan::OPEN_LOOP_STRICT_US),
        first: by_n.keys().next().copied().unwrap_or(0),
        tried: by_n.keys().last().copied().unwrap_or(0),
    }
}

fn limit_cell(n: Option<usize>, l: &OpenLoopLimits) -> String {
    match n {
        Some(n) if n == l.tried => format!("≥ {n} (the most tried)"),
        Some(n) => n.to_string(),
        None => format!("< {}", l.first),
    }
}

/// "Against the targets": the open-loop ramp's limits per target.
fn open_loop_summary(s: &mut String, records: &[Record]) {
    let targets: Vec<String> = target_names(records)
        .into_iter()
        .filter(|t| records.iter().any(|r| r.scenario == "open-loop" && &r.target == t))
        .collect();
    if targets.is_empty() {
        return;
    }
    let sample = records.iter().find(|r| r.scenario == "open-loop");
    let (payload, rate) = sample.map_or((0, 0.0), |r| {
        (r.payload, r.offered_rate.unwrap_or(0.0) / r.conns.max(1) as f64)
    });
    let _ = writeln!(
        s,
        "\nOpen loop, Azure SignalR's unit method: every connection sends {} `Echo` of {} per second on a fixed schedule, \
         whatever the answers do; latency from the scheduled send time. The connections rise per target until p99 reaches 1 s \
         (Azure's bound: 1 unit = 1,000 connections); a run lost nothing unless it was past that bound.\n\n\
         | target | most connections, p99 < 1 s | Azure units | most connections, p99 < 100 ms | p99 at the most tried (ms) |\n|---|---|---|---|---|",
        if (rate - 1.0).abs() < 1e-9 {
            "one".to_owned()
        } else {
            format!("{rate}")
        },
        size(payload)
    );
    for t in &targets {
        let l = open_loop_limits(records, t);
        let at_most = Stat::of(
            records
                .iter()
                .filter(|r| r.scenario == "open-loop" && &r.target == t && r.conns == l.tried && !r.superseded)
                .map(|r| r.p99_us / 1000.0),
        );
        let _ = writeln!(
            s,
            "| {t} | {} | {} | {} | {} at {} conns |",
            limit_cell(l.bound, &l),
            l.bound.map_or("—".into(), |n| num(n as f64 / 1000.0)),
            limit_cell(l.strict, &l),
            med(at_most),
            l.tried
        );
    }
}

/// The open-loop runs in detail.
fn open_loop_details(s: &mut String, targets: &[String], records: &[Record]) {
    let pts = points(records, "open-loop");
    if pts.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Open loop: fixed-rate `Echo` per connection, latency from the scheduled send\n\n\
         Latencies include the generator's send lag (tokio's timers tick every millisecond, so a request leaves up to \
         ~1 ms after its scheduled time); the send-lag column shows it, and a p99 far above 1 ms there means the \
         generator fell behind.\n\n\
         | payload | conns | target | offered/s | answered/s | p50 | p99 | p99.9 | max | lost | send lag p50 / p99 | server CPU µs/msg | server CPU % | generator CPU % | p99 < 100 ms / < 1 s | runs ok |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for &(payload, conns) in &pts {
        for t in targets {
            let rs: Vec<&Record> = records
                .iter()
                .filter(|r| {
                    r.scenario == "open-loop"
                        && r.payload == payload
                        && r.conns == conns
                        && &r.target == t
                        && !r.superseded
                })
                .collect();
            if rs.is_empty() {
                continue;
            }
            let st = |f: &dyn Fn(&Record) -> Option<f64>| Stat::of(rs.iter().filter_map(|r| f(r)));
            let p99 = st(&|r| Some(r.p99_us));
            let saturated = rs.iter().filter(|r| r.saturated).count();
            let verdict = match p99 {
                _ if rs.iter().any(|r| !r.ok) => "failed".to_owned(),
                _ if saturated > 0 => format!("❌ / ❌ (saturated in {saturated})"),
                Some(p) => format!(
                    "{} / {}",
                    if p.median < crate::plan::OPEN_LOOP_STRICT_US {
                        "✅"
                    } else {
                        "❌"
                    },
                    if p.median < crate::plan::OPEN_LOOP_BOUND_US {
                        "✅"
                    } else {
                        "❌"
                    }
                ),
                None => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {conns} | {t} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {verdict} | {}/{} |",
                size(payload),
                med(st(&|r| r.offered_rate)),
                med_range(st(&|r| Some(r.rate))),
                med(st(&|r| Some(r.p50_us))),
                med_range(p99),
                med(st(&|r| Some(r.p999_us))),
                med(st(&|r| Some(r.max_us))),
                st(&|r| Some(r.lost as f64)).map_or("—".into(), |l| format!("{:.0}", l.median)),
                med(st(&|r| r.send_lag_p50_us)),
                med(st(&|r| r.send_lag_p99_us)),
                med_range(st(&|r| r.cpu_us_per_msg)),
                med(st(&|r| r.server_cpu_pct)),
                med(st(&|r| Some(r.loadgen_cpu_pct))),
                rs.iter().filter(|r| r.ok).count(),
                rs.len()
            );
        }
    }
}

/// "Against the targets": Switchboard self-hosted next to the comparators, echo and broadcast.
fn comparator_tables(s: &mut String, g: &BTreeMap<Key, Vec<&Record>>, records: &[Record]) {
    const COMPARATORS: [&str; 3] = ["node-ws", "socketio", "socketioxide"];
    if !records.iter().any(|r| COMPARATORS.contains(&r.target.as_str())) {
        return;
    }
    let times = |a: Option<Stat>, b: Option<Stat>, target: Option<f64>| match ratio(a, b) {
        Some(r) => match target {
            Some(t) => format!("{r:.2}× {}", if r >= t { "✅" } else { "❌" }),
            None => format!("{r:.2}×"),
        },
        None => "—".into(),
    };
    for (scenario, title, unit, target) in [
        (
            "echo",
            "Comparators, echo msgs/s (closed loop, one request in flight per connection). Node `ws` 8 gets the floor's raw frames; \
             socket.io 4.8 and socketioxide get Socket.IO events (`echo`, payload as a JSON string).",
            "conns",
            None,
        ),
        (
            "broadcast",
            "Comparators, broadcast deliveries/s: Switchboard ≥ 3× socket.io (the target is stated for 10k receivers).",
            "receivers",
            Some(3.0),
        ),
    ] {
        let pts = points(records, scenario);
        if !pts
            .iter()
            .any(|&(p, c)| COMPARATORS.iter().any(|t| g.contains_key(&key(scenario, p, c, t))))
        {
            continue;
        }
        let _ = writeln!(
            s,
            "\n{title}\n\n\
             | payload | {unit} | floor | direct-json | direct-msgpack | node-ws | socketio | socketioxide | json/socket.io | msgpack/socket.io | json/Node ws | msgpack/Node ws |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for &(payload, conns) in &pts {
            let k = |t: &str| key(scenario, payload, conns, t);
            let st = |t: &str| stat_of(g, &k(t), |r| Some(r.rate));
            let _ = writeln!(
                s,
                "| {} | {conns} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                size(payload),
                rate_cell(g, &k("floor")),
                rate_cell(g, &k("direct-json")),
                rate_cell(g, &k("direct-msgpack")),
                rate_cell(g, &k("node-ws")),
                rate_cell(g, &k("socketio")),
                rate_cell(g, &k("socketioxide")),
                times(st("direct-json"), st("socketio"), target),
                times(st("direct-msgpack"), st("socketio"), target),
                times(st("direct-json"), st("node-ws"), None),
                times(st("direct-msgpack"), st("node-ws"), None),
            );
        }
    }
}

const COLORS: [&str; 8] = [
    "#555555", "#1f77b4", "#17becf", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
];

struct Panel {
    title: String,
    unit: String,
    categories: Vec<String>,
    series: Vec<String>,
    /// `values[category][series]`
    values: Vec<Vec<Option<Stat>>>,
}

/// A series' colour: a target keeps its colour in every panel (the idle panel's hub and relay
/// readings take their target's), other series go by position.
fn series_color(name: &str, index: usize) -> &'static str {
    let target = match name {
        "direct hub" => "direct-json",
        "relay deployment: hub" => "relay-json",
        "relay deployment: relay" => "relay-msgpack",
        n => n,
    };
    let at = Target::ALL.iter().position(|t| t.name() == target).unwrap_or(index);
    COLORS[at % COLORS.len()]
}

/// The SVG chart: one panel per echo payload, broadcast, and idle memory; bars are medians,
/// whiskers the range.
pub fn svg(records: &[Record]) -> String {
    let g = groups(records);
    let targets = target_names(records);
    let mut panels = Vec::new();
    let echo_points = points(records, "echo");
    let mut payloads: Vec<usize> = echo_points.iter().map(|p| p.0).collect();
    payloads.dedup();
    for payload in payloads {
        let conns: Vec<usize> = echo_points.iter().filter(|p| p.0 == payload).map(|p| p.1).collect();
        panels.push(Panel {
            title: format!("Echo, {} payload: round trips per second", size(payload)),
            unit: "msgs/s".into(),
            categories: conns.iter().map(|c| format!("{c} conns")).collect(),
            series: targets.clone(),
            values: conns
                .iter()
                .map(|&c| {
                    targets
                        .iter()
                        .map(|t| stat_of(&g, &key("echo", payload, c, t), |r| Some(r.rate)))
                        .collect()
                })
                .collect(),
        });
    }
    let bc = points(records, "broadcast");
    if !bc.is_empty() {
        panels.push(Panel {
            title: "Broadcast: deliveries per second".into(),
            unit: "deliveries/s".into(),
            categories: bc.iter().map(|(p, c)| format!("{c} × {}", size(*p))).collect(),
            series: targets.clone(),
            values: bc
                .iter()
                .map(|&(p, c)| {
                    targets
                        .iter()
                        .map(|t| stat_of(&g, &key("broadcast", p, c, t), |r| Some(r.rate)))
                        .collect()
                })
                .collect(),
        });
    }
    let idle = points(records, "idle");
    if !idle.is_empty() {
        let mut series = vec![
            ("floor", "floor", false),
            ("direct-json", "direct hub", false),
            ("relay-json", "relay deployment: hub", false),
            ("relay-json", "relay deployment: relay", true),
        ];
        for c in ["node-ws", "socketio", "socketioxide"] {
            if records.iter().any(|r| r.scenario == "idle" && r.target == c) {
                series.push((c, c, false));
            }
        }
        panels.push(Panel {
            title: "Idle memory: RSS per connection (target ≤ 10 KB)".into(),
            unit: "KB/conn".into(),
            categories: idle.iter().map(|(_, c)| format!("{c} conns")).collect(),
            series: series.iter().map(|(_, label, _)| (*label).to_owned()).collect(),
            values: idle
                .iter()
                .map(|&(_, c)| {
                    series
                        .iter()
                        .map(|&(t, _, relay)| {
                            stat_of(&g, &key("idle", 0, c, t), |r| {
                                if relay { r.relay_kb_per_conn } else { r.kb_per_conn }
                            })
                        })
                        .collect()
                })
                .collect(),
        });
    }
    let ol_targets: Vec<String> = targets
        .iter()
        .filter(|t| records.iter().any(|r| r.scenario == "open-loop" && &r.target == *t))
        .cloned()
        .collect();
    if !ol_targets.is_empty() {
        let limits: Vec<OpenLoopLimits> = ol_targets.iter().map(|t| open_loop_limits(records, t)).collect();
        let one = |v: Option<usize>| v.and_then(|v| Stat::of([v as f64]));
        panels.push(Panel {
            title: "Open loop, 1 Echo/s per connection: most connections served with p99 under the bound".into(),
            unit: "connections".into(),
            categories: ol_targets.clone(),
            series: vec!["p99 < 1 s".into(), "p99 < 100 ms".into()],
            values: limits.iter().map(|l| vec![one(l.bound), one(l.strict)]).collect(),
        });
    }
    let (w, ph) = (960.0, 300.0);
    let h = 20.0 + ph * panels.len().max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut s, p, 10.0 + ph * i as f64, w, ph);
    }
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn panel(s: &mut String, p: &Panel, top: f64, w: f64, h: f64) {
    let (left, right, title_h, bottom_h) = (70.0, 20.0, 54.0, 40.0);
    let plot_h = h - title_h - bottom_h;
    let plot_w = w - left - right;
    let y0 = top + title_h + plot_h;
    let max = p
        .values
        .iter()
        .flatten()
        .flatten()
        .map(|v| v.max)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    // a round scale
    let step = {
        let raw = max / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|v| *v >= raw)
            .unwrap_or(mag * 10.0)
    };
    let top_val = (max / step).ceil() * step;
    let y = |v: f64| y0 - v / top_val * plot_h;
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        top + 16.0,
        esc(&p.title)
    );
    // legend, on a second line when the first is full
    let (mut lx, mut ly) = (left, top + 24.0);
    for (i, name) in p.series.iter().enumerate() {
        let width = 24.0 + 7.0 * name.chars().count() as f64;
        if lx + width > w - right && lx > left {
            lx = left;
            ly += 14.0;
        }
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"{ly}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            series_color(name, i),
            lx + 14.0,
            ly + 9.0,
            esc(name)
        );
        lx += width;
    }
    let mut v = 0.0;
    while v <= top_val + step / 2.0 {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#dddddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y(v) + 4.0,
            num(v),
            y = y(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>",
        top + title_h + plot_h / 2.0,
        top + title_h + plot_h / 2.0,
        esc(&p.unit)
    );
    let nc = p.categories.len().max(1) as f64;
    let group_w = plot_w / nc;
    let ns = p.series.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / ns).min(40.0);
    for (ci, cat) in p.categories.iter().enumerate() {
        let gx = left + group_w * ci as f64 + (group_w - bar_w * ns) / 2.0;
        for (si, val) in p.values[ci].iter().enumerate() {
            let Some(val) = val else { continue };
            let x = gx + bar_w * si as f64;
            let color = series_color(&p.series[si], si);
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
                y(val.median),
                bar_w - 2.0,
                y0 - y(val.median),
                esc(&p.series[si]),
                num(val.median)
            );
            if val.max > val.min {
                let cx = x + (bar_w - 2.0) / 2.0;
                let _ = writeln!(
                    s,
                    "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
                    y(val.min),
                    y(val.max)
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
                x + (bar_w - 2.0) / 2.0,
                y(val.max) - 3.0,
                num(val.median)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            left + group_w * (ci as f64 + 0.5),
            y0 + 16.0,
            esc(cat)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0}\" y2=\"{y0}\" stroke=\"black\"/>",
        left + plot_w
    );
}

/// The soak: per run and server process, memory, descriptors and threads at the start, after
/// the warm-up (the first fifth of the run) and at the end.
fn soak_table(s: &mut String, records: &[Record]) {
    let runs: Vec<&Record> = records
        .iter()
        .filter(|r| r.scenario == "soak" && !r.superseded)
        .collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Soak: connections held while others connect, echo and leave\n\n\
| target | held | churned echoes | lost | errors | process | RSS start → after warm-up → end (max), MiB | growth after warm-up | descriptors start → end | threads start → end | ok |\n\
|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in runs {
        let mut processes: Vec<&str> = r.soak_samples.iter().map(|x| x.process.as_str()).collect();
        processes.dedup();
        processes.sort_unstable();
        processes.dedup();
        for process in processes {
            let samples: Vec<&crate::plan::SoakSample> =
                r.soak_samples.iter().filter(|x| x.process == process).collect();
            let end_secs = samples.last().map_or(0.0, |x| x.secs);
            let warm = samples.iter().find(|x| x.secs >= end_secs / 5.0).or(samples.last());
            let mib = |kb: Option<u64>| kb.map_or("?".to_owned(), |kb| format!("{:.0}", kb as f64 / 1024.0));
            let first = samples.first();
            let last = samples.last();
            let max = samples.iter().filter_map(|x| x.rss_kb).max();
            let growth = match (warm.and_then(|x| x.rss_kb), last.and_then(|x| x.rss_kb)) {
                (Some(a), Some(b)) if a > 0 => format!("{:+.1}%", (b as f64 - a as f64) / a as f64 * 100.0),
                _ => "?".to_owned(),
            };
            let pair = |f: fn(&crate::plan::SoakSample) -> Option<u64>| {
                let show = |x: Option<&&crate::plan::SoakSample>| {
                    x.and_then(|x| f(x)).map_or("?".to_owned(), |v| v.to_string())
                };
                format!("{} → {}", show(first), show(last))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {process} | {} → {} → {} ({}) | {growth} | {} | {} | {} |",
                r.target,
                r.conns,
                r.sent,
                r.lost,
                r.errors,
                mib(first.and_then(|x| x.rss_kb)),
                mib(warm.and_then(|x| x.rss_kb)),
                mib(last.and_then(|x| x.rss_kb)),
                mib(max),
                pair(|x| x.fds),
                pair(|x| x.threads),
                if r.ok { "yes" } else { "no" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_numbers() {
        let s = Stat::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of([1.0, 2.0]).unwrap().median, 1.5);
        assert!(Stat::of([]).is_none());
        assert_eq!(num(177_000.0), "177k");
        assert_eq!(num(12_345.0), "12.3k");
        assert_eq!(num(1_250_000.0), "1.25M");
        assert_eq!(num(6.71), "6.71");
    }

    #[test]
    fn report_renders() {
        let mk = |target: &str, rate: f64| Record {
            scenario: "echo".into(),
            target: target.into(),
            conns: 10,
            payload: 64,
            ok: true,
            rate,
            ..Record::default()
        };
        let records = vec![mk("floor", 100.0), mk("direct-json", 80.0), mk("relay-json", 40.0)];
        let md = markdown(&Plan::smoke(), &Environment::capture(None, None), &records, 1.0);
        assert!(md.contains("| 64 B | 10 | 100 | 80.0 | 80% ✅ |"), "{md}");
        assert!(md.contains("50% ❌"), "{md}");
        let svg = svg(&records);
        assert!(svg.starts_with("<svg") && svg.contains("Echo, 64 B payload"));
    }

    #[test]
    fn comparators_and_open_loop_render() {
        let mk = |scenario: &str, target: &str, conns: usize, rate: f64, p99_us: f64| Record {
            scenario: scenario.into(),
            target: target.into(),
            conns,
            payload: 2048,
            ok: true,
            rate,
            p99_us,
            offered_rate: Some(conns as f64),
            saturated: p99_us >= crate::plan::OPEN_LOOP_BOUND_US,
            ..Record::default()
        };
        let records = vec![
            mk("broadcast", "direct-json", 10000, 300_000.0, 0.0),
            mk("broadcast", "socketio", 10000, 60_000.0, 0.0),
            mk("broadcast", "node-ws", 10000, 100_000.0, 0.0),
            mk("open-loop", "direct-json", 1000, 1000.0, 2_000.0),
            mk("open-loop", "direct-json", 2000, 2000.0, 150_000.0),
            mk("open-loop", "direct-json", 5000, 5000.0, 2_000_000.0),
            mk("open-loop", "floor", 1000, 1000.0, 1_000.0),
            mk("open-loop", "floor", 2000, 2000.0, 1_000.0),
            mk("open-loop", "relay-json", 1000, 1000.0, 1_500_000.0),
        ];
        let limits = open_loop_limits(&records, "direct-json");
        assert_eq!(
            (limits.bound, limits.strict, limits.tried),
            (Some(2000), Some(1000), 5000)
        );
        assert_eq!(open_loop_limits(&records, "relay-json").bound, None);
        let md = markdown(&Plan::smoke(), &Environment::capture(None, None), &records, 1.0);
        assert!(md.contains("| 2 KB | 10000 |"), "{md}");
        assert!(md.contains("5.00× ✅"), "{md}");
        assert!(md.contains("| direct-json | 2000 | 2.00 | 1000 |"), "{md}");
        assert!(md.contains("| floor | ≥ 2000 (the most tried) |"), "{md}");
        assert!(md.contains("| relay-json | < 1000 |"), "{md}");
        let svg = svg(&records);
        assert!(svg.contains("Open loop") && svg.contains("socketio"), "{svg}");
    }
}
