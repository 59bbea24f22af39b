//! The harness: starts the servers under test (pinned to one core), runs the load generator in
//! a child process (pinned to the other), interleaves targets and repetitions, raises the
//! open-loop load until latency breaks, samples server CPU and memory from `/proc`, and writes
//! the results. The Node.js comparators' packages are installed here (`npm ci` in `bench/node`)
//! when missing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::load::{LoadResult, LoadSpec, Scenario};
use crate::plan::{ATTEMPTS, Deployment, INTERFERENCE_PCT, OPEN_LOOP_BOUND_US, Plan, Record, SoakSample, Target};
use crate::proto::Mode;
use crate::{node, procstat, report};

/// Pause before repeating a disturbed run.
const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Longest wait for other processes to calm down before a run.
const QUIET_WAIT: Duration = Duration::from_secs(240);
/// CPU used by processes other than `ours` (and this one) over `span`, in % of one core.
fn foreign_cpu_pct(ours: &[String], span: Duration) -> Option<f64> {
    let sample = || -> Option<(u64, u64)> {
        let mine: u64 =
            ours.iter().filter_map(|p| procstat::cpu_micros(p)).sum::<u64>() + procstat::cpu_micros("self")?;
        Some((procstat::busy_micros_all_cpus()?, mine))
    };
    let (b0, m0) = sample()?;
    std::thread::sleep(span);
    let (b1, m1) = sample()?;
    let other = b1.saturating_sub(b0) as f64 - m1.saturating_sub(m0) as f64;
    Some((other / span.as_micros() as f64 * 100.0).max(0.0))
}

/// Waits (up to [`QUIET_WAIT`]) until other processes use at most [`INTERFERENCE_PCT`] of a core,
/// sampled over half a second while our servers are idle; returns the seconds waited.
fn wait_for_quiet(ours: &[String]) -> f64 {
    let started = Instant::now();
    let mut told = false;
    loop {
        let other = foreign_cpu_pct(ours, Duration::from_millis(500)).unwrap_or(0.0);
        if other <= INTERFERENCE_PCT || started.elapsed() > QUIET_WAIT {
            if told {
                eprintln!(
                    "switchboard-bench: going on after {:.0} s (other processes: {other:.0}% of a core)",
                    started.elapsed().as_secs_f64()
                );
            }
            return started.elapsed().as_secs_f64();
        }
        if !told {
            eprintln!("switchboard-bench: other processes use {other:.0}% of a core; waiting for them to calm down");
            told = true;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Waits (up to 30 s) until the processes `pids` use less than 10% of a core, sampled over a
/// quarter of a second: after an overloaded open-loop run, before the next target's run.
fn settle(pids: &[String]) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let cpu = || pids.iter().filter_map(|p| procstat::cpu_micros(p)).sum::<u64>();
        let before = cpu();
        std::thread::sleep(Duration::from_millis(250));
        if (cpu().saturating_sub(before) as f64) < 0.1 * 250_000.0 {
            return;
        }
    }
}

/// Access key shared by the relay and the service-mode hub during a run (local only).
const ACCESS_KEY: &str = "switchboard-bench-local-access-key-0123456789";

/// Options of `switchboard-bench run`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The plan.
    pub plan: Plan,
    /// Smoke mode: quiet, one summary line.
    pub smoke: bool,
    /// Where results go.
    pub out_dir: PathBuf,
    /// Where `conformance-server`, `switchboard-service`, `floor-server` and
    /// `socketioxide-server` are.
    pub bin_dir: PathBuf,
    /// The Node.js comparators' directory (`package.json`, `package-lock.json`, the scripts).
    pub node_dir: PathBuf,
    /// The `node` executable (`npm` is looked for beside it, then on `PATH`).
    pub node: PathBuf,
    /// Pin servers and generator to different cores with `taskset` when possible.
    pub pin: bool,
}

/// A started server process.
struct ServerProc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl ServerProc {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stop(mut self) {
        if self.stdin.is_none() {
            // It does not watch a standard input (redis-server).
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        drop(self.stdin.take()); // --stop-when-stdin-closes
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A running deployment.
struct Running {
    deployment: Deployment,
    /// Relay first (if any), then the hub or floor server.
    procs: Vec<ServerProc>,
    /// The URL clients start from.
    url: String,
}

impl Running {
    fn stop(self) {
        // the hub first, so the relay does not see a server connection vanish under load
        for p in self.procs.into_iter().rev() {
            p.stop();
        }
    }

    fn pids(&self) -> Vec<(&'static str, String)> {
        self.procs.iter().map(|p| (p.name, p.pid())).collect()
    }

    fn alive(&mut self) -> bool {
        self.procs.iter_mut().all(ServerProc::alive)
    }
}

/// Sends SIGINT to process `pid` and waits (up to `limit`) until it has exited: how long
/// that took.
fn signal_and_wait(pid: &str, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let signalled = Command::new("kill")
        .args(["-INT", pid])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !signalled.success() {
        return Err(format!("kill -INT {pid} failed"));
    }
    while started.elapsed() < limit {
        // Gone, or a zombie waiting for the harness to reap it.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let exited = state
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
        if exited {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "the old app server did not exit within {} s of SIGINT",
        limit.as_secs()
    ))
}

/// Everything `run` needs while running.
struct Harness {
    opts: Options,
    self_exe: PathBuf,
    taskset: bool,
    server_cpu: Option<u32>,
    loadgen_cpu: Option<u32>,
    jsonl: std::fs::File,
    records: Vec<Record>,
    log_seq: usize,
}

/// Runs the whole plan; returns the records (also written to `out_dir`).
pub fn run(opts: Options) -> Result<Vec<Record>, String> {
    let started = Instant::now();
    std::fs::create_dir_all(opts.out_dir.join("logs")).map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    let targets: Vec<Target> = Target::ALL
        .iter()
        .copied()
        .filter(|t| opts.plan.targets.iter().any(|n| *n == t.name()))
        .collect();
    for bin in targets.iter().flat_map(|t| t.deployment.binaries()) {
        if !opts.bin_dir.join(bin).is_file() {
            return Err(format!(
                "{} not found in {}: build first with `cargo build --release -p conformance-server -p switchboard-service -p switchboard-bench` (or pass --bin-dir)",
                bin,
                opts.bin_dir.display()
            ));
        }
    }
    if targets.iter().any(|t| t.deployment.is_node()) {
        node::prepare(&opts.node, &opts.node_dir, !opts.smoke)?;
    }
    // every server and generator process inherits this: up to the hard limit of open files
    let open_files = procstat::raise_open_files_limit();
    let needed = opts.plan.conns_max() as u64 + 256;
    if let Some(limit) = open_files.filter(|&l| l < needed) {
        return Err(format!(
            "the plan opens up to {} connections but a process may hold only {limit} open files (`ulimit -n`, hard limit included)",
            opts.plan.conns_max()
        ));
    }
    let taskset = opts.pin
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let cpus = procstat::allowed_cpus();
    let (loadgen_cpu, server_cpu) = if taskset && cpus.len() >= 2 {
        (Some(cpus[0]), Some(cpus[1]))
    } else {
        (None, None)
    };
    let env = report::Environment::capture(server_cpu, loadgen_cpu);
    if let Some(cpu) = loadgen_cpu {
        // the harness itself mostly sleeps; keep it off the server's core
        let _ = Command::new("taskset")
            .args(["-p", "-c", &cpu.to_string(), &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
    }
    if !opts.smoke {
        eprintln!(
            "switchboard-bench: {} (generator on CPU {}, servers on CPU {}); load average {:.2}",
            if server_cpu.is_some() {
                "pinned with taskset"
            } else {
                "NOT pinned (no taskset or fewer than 2 CPUs)"
            },
            loadgen_cpu.map_or("any".into(), |c| c.to_string()),
            server_cpu.map_or("any".into(), |c| c.to_string()),
            procstat::loadavg_1m().unwrap_or(f64::NAN),
        );
        if procstat::loadavg_1m().is_some_and(|l| l > 0.5) {
            eprintln!(
                "switchboard-bench: load average above 0.5: each run waits until other processes use at most {INTERFERENCE_PCT}% of a core"
            );
        }
    }
    let jsonl = std::fs::File::create(opts.out_dir.join("results.jsonl")).map_err(|e| e.to_string())?;
    let run_json = serde_json::json!({ "plan": &opts.plan, "environment": &env });
    std::fs::write(opts.out_dir.join("run.json"), run_json.to_string()).map_err(|e| format!("run.json: {e}"))?;
    let mut h = Harness {
        self_exe: std::env::current_exe().map_err(|e| e.to_string())?,
        taskset,
        server_cpu,
        loadgen_cpu,
        jsonl,
        records: Vec::new(),
        log_seq: 0,
        opts,
    };
    h.run_all()?;
    let wall = started.elapsed();
    let run_json = serde_json::json!({ "plan": &h.opts.plan, "environment": &env, "wall_secs": wall.as_secs_f64() });
    let _ = std::fs::write(h.opts.out_dir.join("run.json"), run_json.to_string());
    report::write_all(&h.opts.out_dir, &h.opts.plan, &env, &h.records, wall.as_secs_f64())?;
    Ok(h.records)
}

impl Harness {
    fn targets(&self) -> Vec<Target> {
        Target::ALL
            .iter()
            .copied()
            .filter(|t| self.opts.plan.targets.iter().any(|n| *n == t.name()))
            .collect()
    }

    fn wants(&self, scenario: &str) -> bool {
        self.opts.plan.scenarios.iter().any(|s| s == scenario)
    }

    fn run_all(&mut self) -> Result<(), String> {
        let plan = self.opts.plan.clone();
        let targets = self.targets();
        for rep in 1..=plan.reps {
            // interleave: every point runs each target in turn, the order rotating per repetition
            let mut order = targets.clone();
            order.rotate_left((rep - 1) % targets.len().max(1));
            let loaded: Vec<(Scenario, &Vec<usize>, &Vec<usize>)> = [
                (Scenario::Echo, &plan.echo_conns, &plan.echo_payloads),
                (
                    Scenario::EchoMeasure,
                    &plan.echo_measure_conns,
                    &plan.echo_measure_payloads,
                ),
                (Scenario::Broadcast, &plan.broadcast_receivers, &plan.broadcast_payloads),
                (Scenario::Group, &plan.group_receivers, &plan.group_payloads),
            ]
            .into_iter()
            .filter(|(s, _, _)| self.wants(s.name()))
            .collect();
            let open_loop = self.wants(Scenario::OpenLoop.name()) && !plan.open_loop_conns.is_empty();
            let mut deployments: Vec<Deployment> = order
                .iter()
                .filter(|t| {
                    loaded.iter().any(|(s, _, _)| t.supports(s.name()))
                        || (open_loop && t.supports(Scenario::OpenLoop.name()))
                })
                .map(|t| t.deployment)
                .collect();
            deployments.sort();
            deployments.dedup();
            if !deployments.is_empty() {
                let mut running = Vec::new();
                for d in deployments {
                    match self.start(d) {
                        Ok(r) => running.push(r),
                        Err(e) => {
                            for r in running {
                                r.stop();
                            }
                            return Err(e);
                        }
                    }
                }
                let result = self.run_loaded(&mut running, &order, &loaded, open_loop, rep);
                for r in running {
                    r.stop();
                }
                result?;
            }
            if self.wants("idle") {
                // fresh servers for each memory reading; one protocol per deployment
                for &conns in &plan.idle_conns {
                    for &t in &order {
                        if t.supports("idle") {
                            self.idle(t, conns, rep)?;
                        }
                    }
                }
            }
            if self.wants("soak") {
                for &conns in &plan.soak_conns {
                    for &t in &order {
                        if t.supports("soak") {
                            self.soak(t, conns, rep)?;
                        }
                    }
                }
            }
            if self.wants("cluster-idle") {
                for &conns in &plan.cluster_idle_conns {
                    for &t in &order {
                        if t.supports("cluster-idle") {
                            self.cluster_idle(t, conns, rep)?;
                        }
                    }
                }
            }
            if self.wants("migrate") {
                // fresh servers each time: the run shuts one of them down
                for &conns in &plan.migrate_conns {
                    for &t in &order {
                        if t.supports("migrate") {
                            self.migrate(t, conns, rep)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The scenarios under load of one repetition, then the open-loop ramp, on `running`.
    fn run_loaded(
        &mut self,
        running: &mut [Running],
        order: &[Target],
        loaded: &[(Scenario, &Vec<usize>, &Vec<usize>)],
        open_loop: bool,
        rep: usize,
    ) -> Result<(), String> {
        let plan = self.opts.plan.clone();
        let spec = |scenario: Scenario, t: Target, conns: usize, payload: usize| LoadSpec {
            scenario,
            mode: t.mode,
            url: String::new(),
            conns,
            payload,
            warmup_ms: plan.warmup_ms,
            duration_ms: plan.duration_ms,
            window: plan.window,
            connect_concurrency: 64,
            drain_ms: 10_000,
            rate: plan.open_loop_rate,
        };
        for &(scenario, conns_list, payloads) in loaded {
            for &payload in payloads {
                for &conns in conns_list {
                    for &t in order.iter().filter(|t| t.supports(scenario.name())) {
                        self.measure(running, t, spec(scenario, t, conns, payload), rep)?;
                    }
                }
            }
        }
        if !open_loop {
            return Ok(());
        }
        // the ramp: raise the connections per target until its p99 reaches the bound (or a run
        // fails); the points of one count stay interleaved across targets
        let mut active: Vec<Target> = order
            .iter()
            .copied()
            .filter(|t| t.supports(Scenario::OpenLoop.name()))
            .collect();
        let mut counts = plan.open_loop_conns.clone();
        counts.sort_unstable();
        counts.dedup();
        for conns in counts {
            for t in active.clone() {
                let mut spec = spec(Scenario::OpenLoop, t, conns, plan.open_loop_payload);
                spec.warmup_ms = plan.open_loop_warmup_ms;
                spec.duration_ms = plan.open_loop_duration_ms;
                self.measure(running, t, spec, rep)?;
                let Some(last) = self.records.last() else { continue };
                let (ok, saturated) = (last.ok, last.saturated);
                if !ok || saturated {
                    active.retain(|&x| x != t);
                    // let a server that fell behind work off what it still holds
                    if let Some(r) = running.iter().find(|r| r.deployment == t.deployment) {
                        let pids: Vec<String> = r.pids().into_iter().map(|(_, pid)| pid).collect();
                        settle(&pids);
                    }
                }
            }
        }
        Ok(())
    }

    fn log_file(&mut self, name: &str) -> Result<(std::fs::File, PathBuf), String> {
        self.log_seq += 1;
        let path = self
            .opts
            .out_dir
            .join("logs")
            .join(format!("{:03}-{name}.log", self.log_seq));
        let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((file, path))
    }

    fn pinned(&self, cpu: Option<u32>, bin: &Path) -> Command {
        match cpu {
            Some(cpu) if self.taskset => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(bin);
                c
            }
            _ => Command::new(bin),
        }
    }

    /// Starts the relay: its process and the connection string app servers use to reach it.
    fn spawn_relay(&mut self) -> Result<(ServerProc, String), String> {
        let relay = self.spawn_server(
            "switchboard-service",
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--access-key".into(),
                ACCESS_KEY.into(),
                "--stop-when-stdin-closes".into(),
            ],
        )?;
        let service = format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={ACCESS_KEY};Version=1.0;",
            relay.port
        );
        Ok((relay, service))
    }

    fn spawn_server(&mut self, name: &'static str, args: &[String]) -> Result<ServerProc, String> {
        self.spawn_server_with(name, args, &[])
    }

    /// [`Harness::spawn_server`] with these environment variables added.
    fn spawn_server_with(
        &mut self,
        name: &'static str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<ServerProc, String> {
        let bin = self.opts.bin_dir.join(name);
        self.spawn_program_with(name, &bin, args, env)
    }

    /// Starts `bin args` pinned to the servers' CPU, its standard error in `logs/`, and waits for
    /// its `Now listening on: http://127.0.0.1:<port>` line.
    fn spawn_program(&mut self, name: &'static str, bin: &Path, args: &[String]) -> Result<ServerProc, String> {
        self.spawn_program_with(name, bin, args, &[])
    }

    fn spawn_program_with(
        &mut self,
        name: &'static str,
        bin: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<ServerProc, String> {
        let (log, log_path) = self.log_file(name)?;
        let mut cmd = self.pinned(self.server_cpu, bin);
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sent {
                    continue;
                }
                if let Some(url) = line.strip_prefix("Now listening on: ") {
                    let _ = tx.send(url.to_owned());
                    sent = true;
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "{name} did not start (no listening line within 20 s); {}: {}",
                    log_path.display(),
                    if tail.is_empty() {
                        "(empty)".to_owned()
                    } else {
                        tail.join(" | ")
                    }
                ));
            }
        };
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .ok_or_else(|| format!("{name}: bad listening line {url}"))?;
        Ok(ServerProc {
            name,
            child,
            stdin,
            port,
        })
    }

    fn start(&mut self, deployment: Deployment) -> Result<Running, String> {
        let port0 = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--stop-when-stdin-closes".to_owned(),
        ];
        let running = match deployment {
            Deployment::Floor => {
                let p = self.spawn_server("floor-server", &port0)?;
                let url = format!("http://127.0.0.1:{}/", p.port);
                Running {
                    deployment,
                    procs: vec![p],
                    url,
                }
            }
            Deployment::Direct => {
                let p = self.spawn_server("conformance-server", &port0)?;
                let url = format!("http://127.0.0.1:{}/chathub", p.port);
                Running {
                    deployment,
                    procs: vec![p],
                    url,
                }
            }
            Deployment::Relay => {
                let (relay, service) = self.spawn_relay()?;
                let mut args = port0.clone();
                args.push("--service".into());
                args.push(service);
                let hub = match self.spawn_server("conformance-server", &args) {
                    Ok(hub) => hub,
                    Err(e) => {
                        relay.stop();
                        return Err(e);
                    }
                };
                let url = format!("http://127.0.0.1:{}/chathub", hub.port);
                Running {
                    deployment,
                    procs: vec![relay, hub],
                    url,
                }
            }
            Deployment::NodeWs | Deployment::SocketIo => {
                let (name, script) = if deployment == Deployment::NodeWs {
                    ("node-ws", "ws-server.mjs")
                } else {
                    ("node-socketio", "socketio-server.mjs")
                };
                let mut args = vec![self.opts.node_dir.join(script).display().to_string()];
                args.extend(port0);
                let node = self.opts.node.clone();
                let p = self.spawn_program(name, &node, &args)?;
                let url = format!("http://127.0.0.1:{}/", p.port);
                Running {
                    deployment,
                    procs: vec![p],
                    url,
                }
            }
            Deployment::Cluster => return self.start_cluster(self.opts.plan.cluster_nodes),
            Deployment::Socketioxide => {
                let p = self.spawn_server("socketioxide-server", &port0)?;
                let url = format!("http://127.0.0.1:{}/", p.port);
                Running {
                    deployment,
                    procs: vec![p],
                    url,
                }
            }
        };
        // a first connection with one echo proves the deployment works (and, through the relay,
        // that the hub's server connections are up)
        let mode = deployment.probe_mode();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match probe(&running.url, mode) {
                Ok(()) => return Ok(running),
                Err(e) if Instant::now() > deadline => {
                    running.stop();
                    return Err(format!("{} deployment does not answer: {e}", deployment.name()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Runs the generator; calls `on_ready` once every connection is open.
    fn generator(
        &mut self,
        spec: &LoadSpec,
        pids: &[(&'static str, String)],
        mut on_ready: impl FnMut(&mut ChildStdin),
    ) -> Result<(LoadResult, Vec<u64>), String> {
        let json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
        let exe = self.self_exe.clone();
        let mut cmd = self.pinned(self.loadgen_cpu, &exe);
        cmd.arg("load")
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start the generator: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // connecting 10k SignalR clients takes seconds; the drain may take up to 10 s more
        let limit = Duration::from_millis(spec.warmup_ms + spec.duration_ms)
            + Duration::from_secs(60 + spec.conns as u64 / 200);
        let deadline = Instant::now() + limit;
        // the server processes' CPU time, then (last) the busy time of all CPUs
        let cpu_of = |pids: &[(&'static str, String)]| -> Vec<u64> {
            let mut v: Vec<u64> = pids
                .iter()
                .map(|(_, pid)| procstat::cpu_micros(pid).unwrap_or(0))
                .collect();
            v.push(procstat::busy_micros_all_cpus().unwrap_or(0));
            v
        };
        let mut cpu_start = None;
        let mut cpu_delta = None;
        let mut result = None;
        let mut failure = None;
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(timeout) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("the generator did not finish within {} s", limit.as_secs()));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match line.as_str() {
                "ready" => on_ready(&mut stdin),
                "start" => cpu_start = Some(cpu_of(pids)),
                "end" => {
                    let end = cpu_of(pids);
                    if let Some(start) = &cpu_start {
                        cpu_delta = Some(end.iter().zip(start).map(|(e, s)| e.saturating_sub(*s)).collect());
                    }
                }
                other => {
                    if let Some(json) = other.strip_prefix("result ") {
                        result = Some(serde_json::from_str::<LoadResult>(json).map_err(|e| e.to_string())?);
                    } else if let Some(why) = other.strip_prefix("failed ") {
                        failure = Some(why.to_owned());
                    }
                }
            }
        }
        drop(stdin);
        let status = child.wait().map_err(|e| e.to_string())?;
        match result {
            Some(r) => Ok((r, cpu_delta.unwrap_or_default())),
            None => Err(format!(
                "the generator failed ({status}): {}",
                failure.unwrap_or_else(|| "no reason given".into())
            )),
        }
    }

    fn base_record(&self, t: Target, spec: &LoadSpec, rep: usize) -> Record {
        Record {
            scenario: spec.scenario.name().to_owned(),
            target: t.name(),
            deployment: t.deployment.name().to_owned(),
            mode: t.mode.name().to_owned(),
            conns: spec.conns,
            payload: spec.payload,
            window: matches!(spec.scenario, Scenario::Broadcast | Scenario::Group).then_some(spec.window),
            rep,
            loadavg_1m: procstat::loadavg_1m(),
            time_wait: procstat::time_wait_sockets(),
            pinned: self.server_cpu.is_some(),
            ..Record::default()
        }
    }

    /// Measures one point; repeats it (up to [`ATTEMPTS`] times in all, [`RETRY_PAUSE`] apart)
    /// while other processes used more than [`INTERFERENCE_PCT`] of a core during the window.
    /// Repeated attempts stay in `results.jsonl` marked `superseded` and out of the tables.
    fn measure(&mut self, running: &mut [Running], t: Target, spec: LoadSpec, rep: usize) -> Result<(), String> {
        for attempt in 1..=ATTEMPTS {
            let pids: Vec<String> = running.iter().flat_map(|r| r.pids()).map(|(_, pid)| pid).collect();
            let waited = if self.opts.smoke { 0.0 } else { wait_for_quiet(&pids) };
            let mut record = self.measure_once(running, t, spec.clone(), rep)?;
            record.attempt = attempt;
            record.waited_secs = waited;
            record.disturbed = record.other_cpu_pct.is_some_and(|o| o > INTERFERENCE_PCT);
            let retry = record.disturbed && record.ok && attempt < ATTEMPTS && !self.opts.smoke;
            record.superseded = retry;
            self.finish(record);
            if self.opts.smoke {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !retry {
                break;
            }
            std::thread::sleep(RETRY_PAUSE);
        }
        Ok(())
    }

    fn measure_once(
        &mut self,
        running: &mut [Running],
        t: Target,
        mut spec: LoadSpec,
        rep: usize,
    ) -> Result<Record, String> {
        let r = running
            .iter_mut()
            .find(|r| r.deployment == t.deployment)
            .ok_or("deployment not running")?;
        spec.url = r.url.clone();
        let pids = r.pids();
        let mut record = self.base_record(t, &spec, rep);
        match self.generator(&spec, &pids, |_| {}) {
            Ok((res, mut cpu)) => {
                fill_load(&mut record, &res);
                let busy_all = cpu.pop();
                let total: u64 = cpu.iter().sum();
                if let Some(busy_all) = busy_all.filter(|_| res.window_secs > 0.0) {
                    let pct = |us: u64| us as f64 / (res.window_secs * 1e6) * 100.0;
                    record.other_cpu_pct = Some((pct(busy_all) - pct(total) - res.loadgen_cpu_pct).max(0.0));
                }
                if res.count > 0 && !cpu.is_empty() {
                    let per = |us: u64| us as f64 / res.count as f64;
                    record.cpu_us_per_msg = Some(per(total));
                    record.server_cpu_pct = Some(total as f64 / (res.window_secs * 1e6) * 100.0);
                    // Summed over the processes of each kind (a cluster has several relays).
                    let add = |field: &mut Option<f64>, us: u64| *field = Some(field.unwrap_or(0.0) + per(us));
                    for ((name, _), us) in pids.iter().zip(&cpu) {
                        match *name {
                            "switchboard-service" => add(&mut record.relay_cpu_us_per_msg, *us),
                            "conformance-server" => add(&mut record.hub_cpu_us_per_msg, *us),
                            "redis-server" => add(&mut record.redis_cpu_us_per_msg, *us),
                            _ => {}
                        }
                    }
                }
                let open_loop = spec.scenario == Scenario::OpenLoop;
                if open_loop {
                    record.offered_rate = Some(spec.conns as f64 * spec.rate);
                    record.answered_max_us = Some(res.answered_max_us);
                    record.send_lag_p50_us = Some(res.send_lag_p50_us);
                    record.send_lag_p99_us = Some(res.send_lag_p99_us);
                    // past its capacity a server answers late (or, by the end of the drain,
                    // not at all): that ends the ramp, it is not a failure; a server that
                    // answers quickly but loses requests is one
                    record.saturated =
                        res.p99_us >= OPEN_LOOP_BOUND_US || (res.lost > 0 && res.answered_max_us >= OPEN_LOOP_BOUND_US);
                }
                let mut problems = Vec::new();
                if res.connected != spec.conns {
                    problems.push(format!("{} of {} connected", res.connected, spec.conns));
                }
                if res.errors > 0 {
                    problems.push(format!(
                        "{} errors (first: {})",
                        res.errors,
                        res.first_error.clone().unwrap_or_default()
                    ));
                }
                if res.lost > 0 && !record.saturated {
                    problems.push(format!("{} messages lost", res.lost));
                }
                if res.count == 0 && !record.saturated {
                    problems.push("no message completed in the window".into());
                }
                record.ok = problems.is_empty();
                record.error = (!problems.is_empty()).then(|| problems.join("; "));
            }
            Err(e) => {
                record.ok = false;
                record.error = Some(e);
            }
        }
        if !r.alive() {
            record.ok = false;
            record.error = Some(format!(
                "{}; a server process exited",
                record.error.clone().unwrap_or_default()
            ));
            self.finish(record);
            return Err(format!(
                "{} deployment died during {}",
                t.deployment.name(),
                spec.scenario.name()
            ));
        }
        Ok(record)
    }

    /// Client migration: a relay and two app servers (`migrate-a` shuts down with
    /// `MigrateClients`; its clients prefer it, so they all start there). `conns` clients send
    /// open-loop `Echo`s through the move; once the warm-up is over, `migrate-a` gets SIGINT.
    /// The record holds how long until it exited (every client moved, its invocations
    /// finished) and the latency the clients saw meanwhile (the window spans the move).
    fn migrate(&mut self, t: Target, conns: usize, rep: usize) -> Result<(), String> {
        let plan = self.opts.plan.clone();
        let (relay, service) = self.spawn_relay()?;
        let args = |name: &str| -> Vec<String> {
            [
                "--port",
                "0",
                "--stop-when-stdin-closes",
                "--service",
                &service,
                "--server-name",
                name,
            ]
            .iter()
            .map(|a| a.to_string())
            .collect()
        };
        let old = self.spawn_server_with(
            "conformance-server",
            &args("migrate-a"),
            &[
                ("Azure__SignalR__GracefulShutdown__Mode", "MigrateClients"),
                ("Azure__SignalR__GracefulShutdown__TimeoutInSeconds", "120"),
                ("Azure__SignalR__ServerStickyMode", "Preferred"),
            ],
        );
        let new = self.spawn_server("conformance-server", &args("migrate-b"));
        let (mut old, new) = match (old, new) {
            (Ok(old), Ok(new)) => (old, new),
            (old, new) => {
                let error = [old.as_ref().err(), new.as_ref().err()]
                    .into_iter()
                    .flatten()
                    .next()
                    .cloned();
                for p in [old.ok(), new.ok()].into_iter().flatten() {
                    p.stop();
                }
                relay.stop();
                return Err(error.unwrap_or_default());
            }
        };
        let spec = LoadSpec {
            scenario: Scenario::OpenLoop,
            mode: t.mode,
            url: format!("http://127.0.0.1:{}/chathub", old.port),
            conns,
            payload: 64,
            warmup_ms: plan.open_loop_warmup_ms,
            duration_ms: plan.open_loop_duration_ms,
            window: 1,
            connect_concurrency: 64,
            drain_ms: 10_000,
            rate: plan.open_loop_rate,
        };
        let mut record = self.base_record(t, &spec, rep);
        record.scenario = "migrate".into();
        let pids = vec![
            ("switchboard-service", relay.pid()),
            ("conformance-server", old.pid()),
            ("conformance-server", new.pid()),
        ];
        let old_pid = old.pid();
        let moved: std::sync::Arc<std::sync::Mutex<Option<Result<Duration, String>>>> = Default::default();
        let mut mover = None;
        let warmup = Duration::from_millis(spec.warmup_ms);
        let result = self.generator(&spec, &pids, |_| {
            let moved = moved.clone();
            let pid = old_pid.clone();
            mover = Some(std::thread::spawn(move || {
                std::thread::sleep(warmup);
                let outcome = signal_and_wait(&pid, Duration::from_secs(150));
                *moved.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            }));
        });
        if let Some(mover) = mover {
            let _ = mover.join();
        }
        let moved = moved.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut problems = Vec::new();
        match result {
            Ok((res, _)) => {
                fill_load(&mut record, &res);
                record.offered_rate = Some(spec.conns as f64 * spec.rate);
                record.answered_max_us = Some(res.answered_max_us);
                if res.connected != conns {
                    problems.push(format!("{} of {conns} connected", res.connected));
                }
                if res.errors > 0 {
                    problems.push(format!(
                        "{} errors (first: {})",
                        res.errors,
                        res.first_error.clone().unwrap_or_default()
                    ));
                }
                if res.lost > 0 {
                    problems.push(format!("{} messages lost", res.lost));
                }
            }
            Err(e) => problems.push(e),
        }
        match moved {
            Some(Ok(took)) => record.migrate_ms = Some(took.as_secs_f64() * 1000.0),
            Some(Err(e)) => problems.push(e),
            None => problems.push("the old app server was never signalled".into()),
        }
        if old.alive() {
            problems.push("the old app server is still running".into());
        }
        record.ok = problems.is_empty();
        record.error = (!problems.is_empty()).then(|| problems.join("; "));
        old.stop();
        new.stop();
        relay.stop();
        self.finish(record);
        Ok(())
    }

    fn idle(&mut self, t: Target, conns: usize, rep: usize) -> Result<(), String> {
        let plan = self.opts.plan.clone();
        let mut r = self.start(t.deployment)?;
        let spec = idle_spec(t.mode, &r.url, conns);
        let mut record = self.base_record(t, &spec, rep);
        // let the probe connection go away before the baseline reading
        std::thread::sleep(Duration::from_millis(plan.idle_settle_ms));
        let pids = r.pids();
        let before: Vec<Option<u64>> = pids.iter().map(|(_, pid)| procstat::rss_kb(pid)).collect();
        let mut after: Vec<Option<u64>> = Vec::new();
        let settle = Duration::from_millis(plan.idle_settle_ms);
        let result = self.generator(&spec, &pids, |stdin| {
            std::thread::sleep(settle);
            after = pids.iter().map(|(_, pid)| procstat::rss_kb(pid)).collect();
            let _ = stdin.write_all(b"stop\n");
            let _ = stdin.flush();
        });
        match result {
            Ok((res, _)) => {
                fill_load(&mut record, &res);
                let per_conn = |b: Option<u64>, a: Option<u64>| kb_per_conn(b, a, conns);
                for (i, (name, _)) in pids.iter().enumerate() {
                    // for Node.js this is the node process: its heap as the GC left it
                    let (b, a) = (before.get(i).copied().flatten(), after.get(i).copied().flatten());
                    if *name == "switchboard-service" {
                        record.relay_rss_before_kb = b;
                        record.relay_rss_after_kb = a;
                        record.relay_kb_per_conn = per_conn(b, a);
                    } else {
                        record.rss_before_kb = b;
                        record.rss_after_kb = a;
                        record.kb_per_conn = per_conn(b, a);
                    }
                }
                let mut problems = Vec::new();
                if res.connected != conns {
                    problems.push(format!("{} of {conns} connected", res.connected));
                }
                if res.errors > 0 || res.closed > 0 {
                    problems.push(format!(
                        "{} errors, {} closed (first: {})",
                        res.errors,
                        res.closed,
                        res.first_error.clone().unwrap_or_default()
                    ));
                }
                if record.kb_per_conn.is_none() {
                    problems.push("no memory reading".into());
                }
                record.ok = problems.is_empty();
                record.error = (!problems.is_empty()).then(|| problems.join("; "));
            }
            Err(e) => {
                record.ok = false;
                record.error = Some(e);
            }
        }
        let alive = r.alive();
        r.stop();
        if !alive {
            record.ok = false;
            record.error = Some("a server process exited".into());
        }
        self.finish(record);
        Ok(())
    }

    /// The soak: `conns` connections held for `soak_duration_ms` while others churn (connect,
    /// echo, leave); each server process's RSS, descriptors and threads read every
    /// `soak_sample_ms`. Ok when every held connection stayed and every churned echo came back.
    fn soak(&mut self, t: Target, conns: usize, rep: usize) -> Result<(), String> {
        let plan = self.opts.plan.clone();
        let mut r = self.start(t.deployment)?;
        let spec = LoadSpec {
            scenario: Scenario::Soak,
            payload: 64,
            rate: plan.soak_churn_rate,
            // The generator's time limit counts the soak itself.
            duration_ms: plan.soak_duration_ms,
            ..idle_spec(t.mode, &r.url, conns)
        };
        let mut record = self.base_record(t, &spec, rep);
        let pids = r.pids();
        let mut samples = Vec::new();
        let (duration, every) = (
            Duration::from_millis(plan.soak_duration_ms),
            Duration::from_millis(plan.soak_sample_ms.max(1)),
        );
        let result = self.generator(&spec, &pids, |stdin| {
            let started = Instant::now();
            loop {
                let secs = started.elapsed().as_secs_f64();
                for (name, pid) in &pids {
                    samples.push(SoakSample {
                        secs,
                        process: (*name).to_owned(),
                        rss_kb: procstat::rss_kb(pid),
                        fds: procstat::open_fds(pid),
                        threads: procstat::threads(pid),
                    });
                }
                if started.elapsed() >= duration {
                    break;
                }
                std::thread::sleep(every.min(duration.saturating_sub(started.elapsed())));
            }
            let _ = stdin.write_all(b"stop\n");
            let _ = stdin.flush();
        });
        match result {
            Ok((res, _)) => {
                fill_load(&mut record, &res);
                let mut problems = Vec::new();
                if res.connected != conns {
                    problems.push(format!("{} of {conns} connected", res.connected));
                }
                if res.errors > 0 || res.closed > 0 || res.lost > 0 {
                    problems.push(format!(
                        "{} errors, {} held connections closed, {} echoes lost (first: {})",
                        res.errors,
                        res.closed,
                        res.lost,
                        res.first_error.clone().unwrap_or_default()
                    ));
                }
                if res.sent == 0 {
                    problems.push("no connection churned".into());
                }
                if samples.iter().all(|s| s.rss_kb.is_none()) {
                    problems.push("no memory reading".into());
                }
                record.ok = problems.is_empty();
                record.error = (!problems.is_empty()).then(|| problems.join("; "));
            }
            Err(e) => {
                record.ok = false;
                record.error = Some(e);
            }
        }
        record.soak_samples = samples;
        let alive = r.alive();
        r.stop();
        if !alive {
            record.ok = false;
            record.error = Some("a server process exited".into());
        }
        self.finish(record);
        Ok(())
    }

    /// Starts `redis-server` on a free loopback port, saving nothing: its process (killed
    /// when stopped) once it answers `PING`.
    fn spawn_redis(&mut self) -> Result<ServerProc, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let (log, log_path) = self.log_file("redis-server")?;
        let mut cmd = self.pinned(self.server_cpu, Path::new("redis-server"));
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start redis-server (install the redis-server package): {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::Read;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    break;
                }
            }
            if Instant::now() > deadline || !matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server did not start; see {}", log_path.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ServerProc {
            name: "redis-server",
            child,
            stdin: None,
            port,
        })
    }

    /// A relay cluster of `nodes` nodes on its own Redis and one app server dialling the first
    /// node, once that node's negotiate can send clients to every other node.
    fn start_cluster(&mut self, nodes: usize) -> Result<Running, String> {
        let mut procs = vec![self.spawn_redis()?];
        let redis = format!("redis://127.0.0.1:{}/", procs[0].port);
        let stop_all = |procs: Vec<ServerProc>| {
            for p in procs.into_iter().rev() {
                p.stop();
            }
        };
        for node in 1..=nodes.max(1) {
            let args: Vec<String> = [
                "--listen",
                "127.0.0.1:0",
                "--access-key",
                ACCESS_KEY,
                "--stop-when-stdin-closes",
                "--redis",
                &redis,
                "--node-id",
                &format!("c{node}"),
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            match self.spawn_server("switchboard-service", &args) {
                Ok(p) => procs.push(p),
                Err(e) => {
                    stop_all(procs);
                    return Err(e);
                }
            }
        }
        let first = procs[1].port;
        let service = format!("Endpoint=http://127.0.0.1;Port={first};AccessKey={ACCESS_KEY};Version=1.0;");
        let args = ["--port", "0", "--stop-when-stdin-closes", "--service", &service].map(str::to_owned);
        match self.spawn_server("conformance-server", &args) {
            Ok(hub) => procs.push(hub),
            Err(e) => {
                stop_all(procs);
                return Err(e);
            }
        }
        let url = format!("http://127.0.0.1:{}/chathub", procs.last().map_or(0, |p| p.port));
        let running = Running {
            deployment: Deployment::Cluster,
            procs,
            url,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let peers = nodes.max(1) - 1;
        loop {
            let ready = probe(&running.url, Mode::Json).is_ok()
                && cluster_peers_serving(first, "chathub").is_some_and(|serving| serving >= peers);
            if ready {
                return Ok(running);
            }
            if Instant::now() > deadline {
                running.stop();
                return Err(format!("the cluster of {nodes} nodes did not form within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Idle connections held by a relay cluster of `cluster_idle_nodes` nodes: several
    /// generator processes (at most `generator_conns` connections each) open `conns` in all at
    /// once; the record holds the connect rate and the relays' RSS per connection (summed over
    /// the nodes), and the app server's.
    fn cluster_idle(&mut self, t: Target, conns: usize, rep: usize) -> Result<(), String> {
        let plan = self.opts.plan.clone();
        let mut r = self.start_cluster(plan.cluster_idle_nodes)?;
        let generators = conns.div_ceil(plan.generator_conns.max(1)).max(1);
        let spec = |conns: usize| idle_spec(t.mode, &r.url, conns);
        let mut record = self.base_record(t, &spec(conns), rep);
        record.scenario = "cluster-idle".to_owned();
        std::thread::sleep(Duration::from_millis(plan.idle_settle_ms));
        let pids = r.pids();
        let rss = |pids: &[(&'static str, String)], name: &str| -> Option<u64> {
            pids.iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, pid)| procstat::rss_kb(pid))
                .sum::<Option<u64>>()
        };
        let before = (rss(&pids, "switchboard-service"), rss(&pids, "conformance-server"));
        let started = Instant::now();
        let mut children = Vec::new();
        let (tx, rx) = mpsc::channel::<(usize, String)>();
        for g in 0..generators {
            let share = conns / generators + usize::from(g < conns % generators);
            let json = serde_json::to_string(&spec(share)).map_err(|e| e.to_string())?;
            let mut cmd = self.pinned(self.loadgen_cpu, &self.self_exe);
            cmd.arg("load")
                .arg(json)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = cmd.spawn().map_err(|e| format!("cannot start a generator: {e}"))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((g, line)).is_err() {
                        break;
                    }
                }
                let _ = tx.send((g, "exit".to_owned()));
            });
            children.push(child);
        }
        drop(tx);
        let limit = Duration::from_secs(120 + conns as u64 / 200);
        let deadline = Instant::now() + limit;
        let mut ready = vec![false; generators];
        let mut results: Vec<Option<LoadResult>> = (0..generators).map(|_| None).collect();
        let mut exited = vec![false; generators];
        let mut failure: Option<String> = None;
        let mut after = (None, None);
        let mut connect_secs = None;
        while exited.iter().any(|e| !e) {
            let Ok((g, line)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                failure.get_or_insert_with(|| format!("the generators did not finish within {} s", limit.as_secs()));
                break;
            };
            match line.as_str() {
                "ready" => {
                    ready[g] = true;
                    if ready.iter().all(|r| *r) {
                        connect_secs = Some(started.elapsed().as_secs_f64());
                        std::thread::sleep(Duration::from_millis(plan.idle_settle_ms));
                        after = (rss(&pids, "switchboard-service"), rss(&pids, "conformance-server"));
                        for child in &mut children {
                            if let Some(stdin) = child.stdin.as_mut() {
                                let _ = stdin.write_all(b"stop\n");
                                let _ = stdin.flush();
                            }
                        }
                    }
                }
                "exit" => exited[g] = true,
                other => {
                    if let Some(json) = other.strip_prefix("result ") {
                        results[g] = serde_json::from_str(json).ok();
                    } else if let Some(why) = other.strip_prefix("failed ") {
                        failure.get_or_insert_with(|| why.to_owned());
                        // The others are told to stop: the point has failed.
                        for child in &mut children {
                            drop(child.stdin.take());
                        }
                    }
                }
            }
        }
        for mut child in children {
            drop(child.stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
        let connected: usize = results.iter().flatten().map(|r| r.connected).sum();
        let errors: u64 = results.iter().flatten().map(|r| r.errors + r.closed).sum();
        record.connect_secs = connect_secs.unwrap_or(0.0);
        record.connect_rate = connect_secs.map(|secs| connected as f64 / secs.max(1e-9));
        let per_conn = |b: Option<u64>, a: Option<u64>| kb_per_conn(b, a, conns);
        (record.relay_rss_before_kb, record.relay_rss_after_kb) = (before.0, after.0);
        record.relay_kb_per_conn = per_conn(before.0, after.0);
        (record.rss_before_kb, record.rss_after_kb) = (before.1, after.1);
        record.kb_per_conn = per_conn(before.1, after.1);
        let mut problems = Vec::new();
        if let Some(why) = failure {
            problems.push(why);
        }
        if connected != conns {
            problems.push(format!("{connected} of {conns} connected"));
        }
        if errors > 0 {
            let first = results.iter().flatten().find_map(|r| r.first_error.clone());
            problems.push(format!(
                "{errors} errors or closes (first: {})",
                first.unwrap_or_default()
            ));
        }
        if record.relay_kb_per_conn.is_none() {
            problems.push("no memory reading".into());
        }
        if !r.alive() {
            problems.push("a server process exited".into());
        }
        record.ok = problems.is_empty();
        record.error = (!problems.is_empty()).then(|| problems.join("; "));
        r.stop();
        self.finish(record);
        Ok(())
    }

    fn finish(&mut self, record: Record) {
        if let Ok(line) = serde_json::to_string(&record) {
            let _ = writeln!(self.jsonl, "{line}");
            let _ = self.jsonl.flush();
        }
        if !self.opts.smoke || !record.ok {
            eprintln!("{}", report::progress_line(&record));
        }
        self.records.push(record);
    }
}

fn fill_load(record: &mut Record, res: &LoadResult) {
    record.rate = res.rate;
    record.count = res.count;
    record.window_secs = res.window_secs;
    record.p50_us = res.p50_us;
    record.p90_us = res.p90_us;
    record.p99_us = res.p99_us;
    record.p999_us = res.p999_us;
    record.max_us = res.max_us;
    record.loadgen_cpu_pct = res.loadgen_cpu_pct;
    record.sent = res.sent;
    record.lost = res.lost;
    record.errors = res.errors;
    record.connect_secs = res.connect_secs;
    record.connect_rate =
        (res.connect_secs > 0.0 && res.connected > 0).then(|| res.connected as f64 / res.connect_secs);
}

/// One connection and one echo against `url`, on a throw-away runtime.
/// What a generator opening `conns` idle connections to `url` runs.
fn idle_spec(mode: Mode, url: &str, conns: usize) -> LoadSpec {
    LoadSpec {
        scenario: Scenario::Idle,
        mode,
        url: url.to_owned(),
        conns,
        payload: 0,
        warmup_ms: 0,
        duration_ms: 0,
        window: 1,
        connect_concurrency: 64,
        drain_ms: 10_000,
        rate: 1.0,
    }
}

/// The RSS growth from `before` to `after` (KiB) per connection, in KB (1000 B).
fn kb_per_conn(before: Option<u64>, after: Option<u64>, conns: usize) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if conns > 0 => Some((a as f64 - b as f64) * 1.024 / conns as f64),
        _ => None,
    }
}

/// How many other nodes the relay on `port` knows that have an app server for `hub` (from its
/// `/api/health`); `None` when it does not answer.
fn cluster_peers_serving(port: u16, hub: &str) -> Option<usize> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    let health: serde_json::Value = serde_json::from_str(body).ok()?;
    let peers = health.get("peers")?.as_array()?;
    Some(
        peers
            .iter()
            .filter(|peer| peer["hubs"][hub].as_array().is_some_and(|servers| !servers.is_empty()))
            .count(),
    )
}

fn probe(url: &str, mode: Mode) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (mut ws, _) = crate::conn::connect(url, mode, 0).await?;
        let encoder = crate::proto::Encoder::new(mode, 8);
        ws.send(crate::conn::message(encoder.echo(1, 42)))
            .await
            .map_err(|e| e.to_string())?;
        let mut incoming = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| "probe: no echo".to_owned())?
                .ok_or("probe: closed")?
                .map_err(|e| e.to_string())?;
            crate::conn::decode(mode, &msg, &mut incoming)?;
            if incoming
                .iter()
                .any(|m| matches!(m, crate::proto::Incoming::Completion { ticks: 42, .. }))
            {
                let _ = ws.close(None).await;
                return Ok(());
            }
        }
    })
}
