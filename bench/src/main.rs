//! `switchboard-bench`: runs the benchmark (`run`) or, as the harness's child process, the load
//! generator (`load`).
//!
//! ```text
//! switchboard-bench run [--smoke] [--out DIR] [--bin-dir DIR] [--node-dir DIR] [--node PATH]
//!                       [--reps N] [--warmup-ms MS] [--duration-ms MS]
//!                       [--scenarios echo,echo-measure,broadcast,group,open-loop,idle,migrate,cluster-idle,soak]
//!                       [--targets floor,direct-json,direct-msgpack,relay-json,relay-msgpack,node-ws,socketio,socketioxide,cluster-json]
//!                       [--echo-conns 1,10,…] [--echo-payloads 64,2048] [--echo-measure-conns …]
//!                       [--echo-measure-payloads …] [--broadcast-receivers 1000,…] [--broadcast-payloads 64,…]
//!                       [--group-receivers …] [--group-payloads …] [--window N] [--idle-conns 1000,…] [--migrate-conns 1000,…]
//!                       [--open-loop-conns 1000,2000,…] [--open-loop-payload B] [--open-loop-rate R]
//!                       [--open-loop-warmup-ms MS] [--open-loop-duration-ms MS] [--cluster-nodes N]
//!                       [--cluster-idle-conns 100000,…] [--cluster-idle-nodes N] [--generator-conns N] [--no-pin]
//!                       [--soak-conns 18000,…] [--soak-duration-ms MS] [--soak-churn-rate R] [--soak-sample-ms MS]
//! switchboard-bench report DIR
//! switchboard-bench load '<LoadSpec JSON>'
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use switchboard_bench::harness::{self, Options};
use switchboard_bench::load;
use switchboard_bench::plan::{self, Plan};

const USAGE: &str =
    "usage: switchboard-bench run [--smoke] [--out DIR] [--bin-dir DIR] [--node-dir DIR] [--node PATH] \
[--reps N] [--warmup-ms MS] [--duration-ms MS] [--scenarios echo,echo-measure,broadcast,group,open-loop,idle,migrate,cluster-idle,soak] \
[--targets floor,direct-json,direct-msgpack,relay-json,relay-msgpack,node-ws,socketio,socketioxide,cluster-json] \
[--echo-conns LIST] [--echo-payloads LIST] [--echo-measure-conns LIST] [--echo-measure-payloads LIST] \
[--broadcast-receivers LIST] [--broadcast-payloads LIST] [--group-receivers LIST] [--group-payloads LIST] \
[--window N] [--idle-conns LIST] [--migrate-conns LIST] [--open-loop-conns LIST] [--open-loop-payload B] [--open-loop-rate R] \
[--open-loop-warmup-ms MS] [--open-loop-duration-ms MS] [--cluster-nodes N] [--cluster-idle-conns LIST] \
[--cluster-idle-nodes N] [--generator-conns N] [--no-pin] \
[--soak-conns LIST] [--soak-duration-ms MS] [--soak-churn-rate R] [--soak-sample-ms MS]
       switchboard-bench report DIR      (rewrite DIR/summary.md and DIR/chart.svg from DIR/results.jsonl)
       switchboard-bench load '<spec JSON>'

Build first: cargo build --release -p conformance-server -p switchboard-service -p switchboard-bench";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("load") => load_child(&args[1..]),
        Some("report") => match args
            .get(1)
            .map(|d| switchboard_bench::report::regenerate(std::path::Path::new(d)))
        {
            Some(Ok(n)) => {
                println!("switchboard-bench: report rewritten from {n} records in {}", args[1]);
                ExitCode::SUCCESS
            }
            Some(Err(e)) => {
                eprintln!("switchboard-bench report: {e}");
                ExitCode::FAILURE
            }
            None => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn load_child(args: &[String]) -> ExitCode {
    let Some(spec) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let spec: load::LoadSpec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("switchboard-bench load: bad spec: {e}");
            return ExitCode::from(2);
        }
    };
    match load::run(spec) {
        Ok(result) => {
            println!("result {}", serde_json::to_string(&result).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            // the harness reads this line into the run's record
            println!("failed {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn list<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<Vec<T>, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<T>().map_err(|_| format!("{flag}: bad value {s}")))
        .collect()
}

fn one<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value.parse().map_err(|_| format!("{flag}: bad value {value}"))
}

fn parse_run(args: &[String]) -> Result<Options, String> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut plan = if smoke { Plan::smoke() } else { Plan::full() };
    let mut out = None;
    let mut bin_dir = None;
    let mut node_dir = None;
    let mut node = None;
    let mut pin = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => {}
            "--no-pin" => pin = false,
            "--out" => out = Some(PathBuf::from(one::<String>(arg, it.next())?)),
            "--bin-dir" => bin_dir = Some(PathBuf::from(one::<String>(arg, it.next())?)),
            "--node-dir" => node_dir = Some(PathBuf::from(one::<String>(arg, it.next())?)),
            "--node" => node = Some(PathBuf::from(one::<String>(arg, it.next())?)),
            "--reps" => plan.reps = one(arg, it.next())?,
            "--warmup-ms" => plan.warmup_ms = one(arg, it.next())?,
            "--duration-ms" => plan.duration_ms = one(arg, it.next())?,
            "--window" => plan.window = one(arg, it.next())?,
            "--scenarios" => plan.scenarios = list(arg, it.next())?,
            "--targets" => plan.targets = list(arg, it.next())?,
            "--echo-conns" => plan.echo_conns = list(arg, it.next())?,
            "--echo-payloads" => plan.echo_payloads = list(arg, it.next())?,
            "--broadcast-receivers" => plan.broadcast_receivers = list(arg, it.next())?,
            "--broadcast-payloads" => plan.broadcast_payloads = list(arg, it.next())?,
            "--echo-measure-conns" => plan.echo_measure_conns = list(arg, it.next())?,
            "--echo-measure-payloads" => plan.echo_measure_payloads = list(arg, it.next())?,
            "--group-receivers" => plan.group_receivers = list(arg, it.next())?,
            "--group-payloads" => plan.group_payloads = list(arg, it.next())?,
            "--idle-conns" => plan.idle_conns = list(arg, it.next())?,
            "--migrate-conns" => plan.migrate_conns = list(arg, it.next())?,
            "--open-loop-conns" => plan.open_loop_conns = list(arg, it.next())?,
            "--open-loop-payload" => plan.open_loop_payload = one(arg, it.next())?,
            "--open-loop-rate" => plan.open_loop_rate = one(arg, it.next())?,
            "--open-loop-warmup-ms" => plan.open_loop_warmup_ms = one(arg, it.next())?,
            "--open-loop-duration-ms" => plan.open_loop_duration_ms = one(arg, it.next())?,
            "--cluster-nodes" => plan.cluster_nodes = one(arg, it.next())?,
            "--cluster-idle-conns" => plan.cluster_idle_conns = list(arg, it.next())?,
            "--cluster-idle-nodes" => plan.cluster_idle_nodes = one(arg, it.next())?,
            "--generator-conns" => plan.generator_conns = one(arg, it.next())?,
            "--soak-conns" => plan.soak_conns = list(arg, it.next())?,
            "--soak-duration-ms" => plan.soak_duration_ms = one(arg, it.next())?,
            "--soak-churn-rate" => plan.soak_churn_rate = one(arg, it.next())?,
            "--soak-sample-ms" => plan.soak_sample_ms = one(arg, it.next())?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if plan.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    for s in &plan.scenarios {
        if !plan::SCENARIOS.contains(&s.as_str()) {
            return Err(format!("unknown scenario {s}"));
        }
    }
    for t in &plan.targets {
        if !plan::Target::ALL.iter().any(|x| &x.name() == t) {
            return Err(format!("unknown target {t}"));
        }
    }
    if plan.conns_max() > plan::MAX_CONNS {
        return Err(format!(
            "at most {} connections per point (one process may hold 20000 descriptors)",
            plan::MAX_CONNS
        ));
    }
    if plan.cluster_nodes == 0 || plan.cluster_idle_nodes == 0 {
        return Err("--cluster-nodes and --cluster-idle-nodes must be at least 1".into());
    }
    if plan.generator_conns == 0 || plan.generator_conns > plan::MAX_CONNS {
        return Err(format!("--generator-conns must be 1 to {}", plan::MAX_CONNS));
    }
    if plan
        .cluster_idle_conns
        .iter()
        .any(|conns| conns.div_ceil(plan.cluster_idle_nodes) > plan::MAX_CONNS)
    {
        return Err(format!(
            "a cluster idle point may put at most {} connections on each node",
            plan::MAX_CONNS
        ));
    }
    if !(plan.open_loop_rate > 0.0 && plan.open_loop_rate <= 1000.0) {
        return Err("--open-loop-rate must be above 0 and at most 1000 requests/s per connection".into());
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    Ok(Options {
        plan,
        smoke,
        out_dir: out.unwrap_or_else(|| PathBuf::from(if smoke { "target/bench-smoke" } else { "target/bench" })),
        bin_dir: bin_dir.unwrap_or(exe_dir),
        node_dir: node_dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node")),
        node: node.unwrap_or_else(|| PathBuf::from("node")),
        pin,
    })
}

fn run(args: &[String]) -> ExitCode {
    let opts = match parse_run(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("switchboard-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let out = opts.out_dir.clone();
    let smoke = opts.smoke;
    match harness::run(opts) {
        Ok(records) => {
            let failed = records.iter().filter(|r| !r.ok).count();
            println!(
                "switchboard-bench{}: {} runs, {} failed, {:.1} s; results in {}",
                if smoke { " smoke" } else { "" },
                records.len(),
                failed,
                started.elapsed().as_secs_f64(),
                out.display()
            );
            if failed == 0 && !records.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!(
                "switchboard-bench{}: error after {:.1} s: {e}",
                if smoke { " smoke" } else { "" },
                started.elapsed().as_secs_f64()
            );
            ExitCode::FAILURE
        }
    }
}
