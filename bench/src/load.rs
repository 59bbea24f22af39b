//! The load generator: one process, one thread (a current-thread tokio runtime), many
//! connections. It is driven by the harness through a [`LoadSpec`] and reports on standard
//! output with one line per event:
//!
//! * `ready` — every connection is open (and, for broadcasts, sees broadcasts);
//! * `start` / `end` — the measurement window opens / closes (the harness samples server CPU);
//! * `result <json>` — the [`LoadResult`].
//!
//! In the idle scenario the generator holds its connections after `ready` (sending pings)
//! until a line arrives on standard input or it closes.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Ws};
use crate::procstat;
use crate::proto::{Encoder, Incoming, Mode};

/// What the generator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Closed loop: each connection invokes `Echo(ticks, payload)` and waits for its completion.
    Echo,
    /// Closed loop through a client method: `EchoMeasure` answered by `Measure` on the caller.
    EchoMeasure,
    /// One sender invokes `BroadcastMeasure`; every connection (the sender too) receives
    /// `Measure`. At most `window` broadcasts are in flight.
    Broadcast,
    /// Like `Broadcast` but through `JoinGroup` + `GroupMeasure` on one group holding everyone.
    Group,
    /// Connections are opened and held (with pings) until told to stop.
    Idle,
}

impl Scenario {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Echo => "echo",
            Scenario::EchoMeasure => "echo-measure",
            Scenario::Broadcast => "broadcast",
            Scenario::Group => "group",
            Scenario::Idle => "idle",
        }
    }
}

/// One load-generator run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadSpec {
    /// What to do.
    pub scenario: Scenario,
    /// How to talk.
    pub mode: Mode,
    /// The endpoint: a hub URL (`http://127.0.0.1:P/chathub`) or, in raw mode, any URL of the server.
    pub url: String,
    /// Number of connections.
    pub conns: usize,
    /// Payload bytes per message.
    pub payload: usize,
    /// Traffic before the window opens, in milliseconds.
    pub warmup_ms: u64,
    /// Length of the measurement window, in milliseconds.
    pub duration_ms: u64,
    /// Broadcasts in flight at most (broadcast and group scenarios).
    pub window: usize,
    /// Connections being opened at the same time.
    pub connect_concurrency: usize,
    /// How long to wait after the window for answers and deliveries still under way before
    /// counting the rest as lost, in milliseconds.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
}

fn default_drain_ms() -> u64 {
    10_000
}

/// What one generator run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Connections opened.
    pub connected: usize,
    /// Seconds spent opening them.
    pub connect_secs: f64,
    /// Length of the measurement window actually observed, in seconds.
    pub window_secs: f64,
    /// Messages (echo round trips or broadcast deliveries) completed inside the window.
    pub count: u64,
    /// `count / window_secs`.
    pub rate: f64,
    /// Latency percentiles inside the window, in microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest latency.
    pub max_us: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Requests or broadcasts sent over the whole run (warm-up included).
    pub sent: u64,
    /// Messages that never arrived (expected minus received after the drain).
    pub lost: u64,
    /// Errors: failed connections, error completions, mismatched echoes, closes, timeouts.
    pub errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Connections closed by the server while idle (idle scenario).
    pub closed: u64,
    /// CPU used by the generator during the window, in % of one core.
    pub loadgen_cpu_pct: f64,
}

/// Writes one protocol line to standard output.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Shared {
    base: Instant,
    encoder: Encoder,
    payload: usize,
    measuring: Cell<bool>,
    stop: Cell<bool>,
    hist: RefCell<Histogram<u64>>,
    in_window: Cell<u64>,
    /// Echo: completions; broadcast: deliveries of measured broadcasts (ticks ≠ 0).
    total: Cell<u64>,
    sent: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    closed: Cell<u64>,
    /// Broadcast: receivers that saw a marker broadcast.
    ready: Cell<usize>,
    /// Broadcast: the delivery count the sender waits for.
    need: Cell<u64>,
    progress: Notify,
}

impl Shared {
    fn now(&self) -> u64 {
        // never 0: ticks == 0 marks readiness probes
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn error(&self, e: impl Into<String>) {
        self.errors.set(self.errors.get() + 1);
        let mut first = self.first_error.borrow_mut();
        if first.is_none() {
            *first = Some(e.into());
        }
        self.progress.notify_one();
    }

    fn record(&self, latency_ns: u64) {
        if self.measuring.get() {
            self.in_window.set(self.in_window.get() + 1);
            self.hist.borrow_mut().saturating_record(latency_ns.max(1));
        }
    }
}

/// Runs the generator for `spec` on a fresh current-thread runtime, printing protocol lines.
pub fn run(spec: LoadSpec) -> Result<LoadResult, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run_local(spec))
}

async fn run_local(spec: LoadSpec) -> Result<LoadResult, String> {
    let shared = Rc::new(Shared {
        base: Instant::now(),
        encoder: Encoder::new(spec.mode, spec.payload),
        payload: spec.payload,
        measuring: Cell::new(false),
        stop: Cell::new(false),
        hist: RefCell::new(Histogram::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| e.to_string())?),
        in_window: Cell::new(0),
        total: Cell::new(0),
        sent: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        closed: Cell::new(0),
        ready: Cell::new(0),
        need: Cell::new(0),
        progress: Notify::new(),
    });
    let mut result = LoadResult::default();
    let connect_started = Instant::now();
    let conns = open_all(&spec).await?;
    result.connected = conns.len();
    result.connect_secs = connect_started.elapsed().as_secs_f64();
    match spec.scenario {
        Scenario::Echo | Scenario::EchoMeasure => echo(&spec, &shared, conns, &mut result).await,
        Scenario::Broadcast | Scenario::Group => broadcast(&spec, &shared, conns, &mut result).await?,
        Scenario::Idle => idle(&shared, conns, &mut result).await,
    }
    let hist = shared.hist.borrow();
    if !hist.is_empty() {
        let us = |v: u64| v as f64 / 1000.0;
        result.p50_us = us(hist.value_at_quantile(0.5));
        result.p90_us = us(hist.value_at_quantile(0.9));
        result.p99_us = us(hist.value_at_quantile(0.99));
        result.p999_us = us(hist.value_at_quantile(0.999));
        result.max_us = us(hist.max());
        result.mean_us = hist.mean() / 1000.0;
    }
    result.count = shared.in_window.get();
    if result.window_secs > 0.0 {
        result.rate = result.count as f64 / result.window_secs;
    }
    result.sent = shared.sent.get();
    result.errors = shared.errors.get();
    result.first_error = shared.first_error.borrow().clone();
    result.closed = shared.closed.get();
    Ok(result)
}

/// Opens `spec.conns` connections, `connect_concurrency` at a time, with up to 3 attempts each.
async fn open_all(spec: &LoadSpec) -> Result<Vec<(Ws, Vec<Incoming>)>, String> {
    let gate = Rc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(spec.conns);
    for index in 0..spec.conns {
        let gate = gate.clone();
        let url = spec.url.clone();
        let mode = spec.mode;
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let mut last = String::new();
            for attempt in 0..3 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                match tokio::time::timeout(Duration::from_secs(20), conn::connect(&url, mode, index)).await {
                    Ok(Ok(c)) => return Ok(c),
                    Ok(Err(e)) => last = e,
                    Err(_) => last = "connect timed out after 20 s".into(),
                }
            }
            Err(format!("connection {index}: {last}"))
        }));
    }
    let mut conns = Vec::with_capacity(spec.conns);
    for task in tasks {
        conns.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok(conns)
}

/// Opens the window after the warm-up and closes it after the duration.
async fn measurement_window(spec: &LoadSpec, shared: &Shared, result: &mut LoadResult) {
    tokio::time::sleep(Duration::from_millis(spec.warmup_ms)).await;
    let cpu0 = procstat::cpu_micros("self");
    say("start");
    let t0 = Instant::now();
    shared.measuring.set(true);
    tokio::time::sleep(Duration::from_millis(spec.duration_ms)).await;
    shared.measuring.set(false);
    let window = t0.elapsed();
    say("end");
    shared.stop.set(true);
    result.window_secs = window.as_secs_f64();
    if let (Some(a), Some(b)) = (cpu0, procstat::cpu_micros("self")) {
        result.loadgen_cpu_pct = (b - a) as f64 / window.as_micros().max(1) as f64 * 100.0;
    }
}

async fn echo(spec: &LoadSpec, shared: &Rc<Shared>, conns: Vec<(Ws, Vec<Incoming>)>, result: &mut LoadResult) {
    say("ready");
    let mut tasks = Vec::new();
    for (ws, _) in conns {
        let shared = shared.clone();
        let through_measure = spec.scenario == Scenario::EchoMeasure;
        let drain = Duration::from_millis(spec.drain_ms.max(1));
        tasks.push(tokio::task::spawn_local(async move {
            if let Err(e) = echo_loop(ws, &shared, through_measure, drain).await {
                shared.error(e);
            }
        }));
    }
    measurement_window(spec, shared, result).await;
    // the drain: every request sent gets its answer, or the task reports an error
    for task in tasks {
        let _ = task.await;
    }
    result.lost = shared.sent.get().saturating_sub(shared.total.get());
}

async fn echo_loop(mut ws: Ws, shared: &Shared, through_measure: bool, patience: Duration) -> Result<(), String> {
    let mode = shared.encoder.mode();
    let mut id = 0u64;
    let mut incoming = Vec::new();
    while !shared.stop.get() {
        id += 1;
        let ticks = shared.now();
        let frame = if through_measure {
            shared.encoder.echo_measure(ticks)
        } else {
            shared.encoder.echo(id, ticks)
        };
        shared.sent.set(shared.sent.get() + 1);
        ws.send(conn::message(frame)).await.map_err(|e| format!("send: {e}"))?;
        'wait: loop {
            let msg = tokio::time::timeout(patience, ws.next())
                .await
                .map_err(|_| format!("no answer within {} ms", patience.as_millis()))?
                .ok_or("connection closed")?
                .map_err(|e| format!("read: {e}"))?;
            incoming.clear();
            conn::decode(mode, &msg, &mut incoming)?;
            for m in incoming.drain(..) {
                let answer = match m {
                    Incoming::Completion { ticks, payload_len } if !through_measure || mode == Mode::Raw => {
                        Some((ticks, payload_len))
                    }
                    Incoming::Measure { ticks, payload_len } if through_measure => Some((ticks, payload_len)),
                    Incoming::CompletionError(e) => return Err(format!("error completion: {e}")),
                    Incoming::Close(e) => return Err(format!("closed by the server: {e:?}")),
                    _ => None,
                };
                if let Some((t, payload_len)) = answer {
                    if t != ticks || payload_len != shared.payload {
                        return Err(format!(
                            "echo mismatch: sent ticks {ticks} / {} B, got {t} / {payload_len} B",
                            shared.payload
                        ));
                    }
                    shared.total.set(shared.total.get() + 1);
                    shared.record(shared.now() - ticks);
                    break 'wait;
                }
            }
        }
    }
    Ok(())
}

async fn broadcast(
    spec: &LoadSpec,
    shared: &Rc<Shared>,
    conns: Vec<(Ws, Vec<Incoming>)>,
    result: &mut LoadResult,
) -> Result<(), String> {
    let n = conns.len() as u64;
    if n == 0 {
        return Err("no connections".into());
    }
    let group = spec.scenario == Scenario::Group;
    let group_name = "bench";
    let mut sender_sink = None;
    for (index, (mut ws, early)) in conns.into_iter().enumerate() {
        if group {
            join_group(&mut ws, shared, group_name).await?;
        }
        let (sink, stream) = ws.split();
        if index == 0 {
            sender_sink = Some(sink);
            let shared = shared.clone();
            tokio::task::spawn_local(async move { receive(stream, None::<WsSink>, early, &shared).await });
        } else {
            let shared = shared.clone();
            tokio::task::spawn_local(async move { receive(stream, Some(sink), early, &shared).await });
        }
    }
    let mut sink = sender_sink.ok_or("no sender")?;
    let encode = |ticks: u64| {
        if group {
            shared.encoder.group_measure(group_name, ticks)
        } else {
            shared.encoder.broadcast_measure(ticks)
        }
    };
    // readiness: marker broadcasts (ticks 0) until every receiver has seen one; through a
    // relay a connection may be usable a moment before the hub knows it
    let deadline = Instant::now() + Duration::from_secs(15);
    while shared.ready.get() < n as usize {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} receivers saw a broadcast within 15 s",
                shared.ready.get()
            ));
        }
        sink.send(conn::message(encode(0)))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let _ = tokio::time::timeout(Duration::from_millis(100), shared.progress.notified()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // let late markers arrive before counting starts
    tokio::time::sleep(Duration::from_millis(100)).await;
    say("ready");
    let window = spec.window.max(1) as u64;
    let sender = {
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            let mut sent = 0u64;
            while !shared.stop.get() {
                if sent >= window {
                    let need = (sent + 1 - window) * n;
                    shared.need.set(need);
                    while shared.total.get() < need && !shared.stop.get() && shared.errors.get() == 0 {
                        shared.progress.notified().await;
                    }
                    if shared.stop.get() || shared.errors.get() > 0 {
                        break;
                    }
                }
                let frame = if group {
                    shared.encoder.group_measure(group_name, shared.now())
                } else {
                    shared.encoder.broadcast_measure(shared.now())
                };
                if let Err(e) = sink.send(conn::message(frame)).await {
                    shared.error(format!("send: {e}"));
                    break;
                }
                sent += 1;
                shared.sent.set(sent);
            }
            sink
        })
    };
    measurement_window(spec, shared, result).await;
    shared.progress.notify_one();
    let _sink = sender.await.map_err(|e| e.to_string())?;
    // the drain: every broadcast sent reaches every connection, or the rest counts as lost
    let expected = shared.sent.get() * n;
    let deadline = Instant::now() + Duration::from_millis(spec.drain_ms);
    while shared.total.get() < expected && Instant::now() < deadline && shared.errors.get() == 0 {
        shared.need.set(expected);
        let _ = tokio::time::timeout(Duration::from_millis(50), shared.progress.notified()).await;
    }
    result.lost = expected.saturating_sub(shared.total.get());
    Ok(())
}

type WsSink = futures_util::stream::SplitSink<Ws, Message>;

async fn join_group(ws: &mut Ws, shared: &Shared, group: &str) -> Result<(), String> {
    let mode = shared.encoder.mode();
    if mode == Mode::Raw {
        return Ok(()); // the floor has one implicit group: everyone
    }
    ws.send(conn::message(shared.encoder.join_group(1, group)))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut incoming = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "JoinGroup: no answer within 10 s".to_owned())?
            .ok_or("closed")?
            .map_err(|e| format!("read: {e}"))?;
        incoming.clear();
        conn::decode(mode, &msg, &mut incoming)?;
        for m in incoming.drain(..) {
            match m {
                Incoming::Completion { .. } => return Ok(()),
                Incoming::CompletionError(e) => return Err(format!("JoinGroup: {e}")),
                Incoming::Close(e) => return Err(format!("JoinGroup: closed {e:?}")),
                _ => {}
            }
        }
    }
}

/// A receiver: counts `Measure` deliveries, records their latency, answers with pings every 15 s
/// when it has a sink (the sender's own connection sends anyway).
async fn receive(
    mut stream: futures_util::stream::SplitStream<Ws>,
    mut sink: Option<WsSink>,
    early: Vec<Incoming>,
    shared: &Shared,
) {
    let mode = shared.encoder.mode();
    let mut seen_marker = false;
    let mut incoming = early;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(15),
        Duration::from_secs(15),
    );
    loop {
        for m in incoming.drain(..) {
            match m {
                Incoming::Measure { ticks: 0, .. } if !seen_marker => {
                    seen_marker = true;
                    shared.ready.set(shared.ready.get() + 1);
                    shared.progress.notify_one();
                }
                Incoming::Measure { ticks: 0, .. } => {}
                Incoming::Measure { ticks, payload_len } => {
                    if payload_len != shared.payload {
                        shared.error(format!("delivery of {payload_len} B, expected {}", shared.payload));
                    }
                    let total = shared.total.get() + 1;
                    shared.total.set(total);
                    shared.record(shared.now().saturating_sub(ticks));
                    if total >= shared.need.get() {
                        shared.progress.notify_one();
                    }
                }
                Incoming::Close(e) => {
                    shared.error(format!("closed by the server: {e:?}"));
                    return;
                }
                _ => {}
            }
        }
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(msg)) => {
                    if let Err(e) = conn::decode(mode, &msg, &mut incoming) {
                        shared.error(e);
                        return;
                    }
                }
                Some(Err(e)) => {
                    if !shared.stop.get() {
                        shared.error(format!("read: {e}"));
                    }
                    return;
                }
                None => {
                    if !shared.stop.get() {
                        shared.error("connection closed");
                    }
                    return;
                }
            },
            _ = ping.tick(), if sink.is_some() => {
                if let Some(sink) = sink.as_mut() {
                    let msg = match shared.encoder.ping() {
                        Some(frame) => conn::message(frame),
                        None => Message::Ping(Default::default()),
                    };
                    let _ = sink.send(msg).await;
                }
            }
        }
    }
}

async fn idle(shared: &Rc<Shared>, conns: Vec<(Ws, Vec<Incoming>)>, _result: &mut LoadResult) {
    for (ws, _) in conns {
        let shared = shared.clone();
        tokio::task::spawn_local(async move { hold(ws, &shared).await });
    }
    say("ready");
    // hold until told to stop (a line on standard input, or its end)
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let _ = tokio::io::AsyncBufReadExt::read_line(&mut stdin, &mut line).await;
    shared.stop.set(true);
}

async fn hold(mut ws: Ws, shared: &Shared) {
    let mode = shared.encoder.mode();
    let mut incoming = Vec::new();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(15),
        Duration::from_secs(15),
    );
    loop {
        tokio::select! {
            msg = ws.next() => {
                let closed = match msg {
                    Some(Ok(msg)) => {
                        incoming.clear();
                        conn::decode(mode, &msg, &mut incoming).is_err()
                            || incoming.iter().any(|m| matches!(m, Incoming::Close(_)))
                    }
                    _ => true,
                };
                if closed {
                    if !shared.stop.get() {
                        shared.closed.set(shared.closed.get() + 1);
                        shared.error("an idle connection was closed");
                    }
                    return;
                }
            }
            _ = ping.tick() => {
                let msg = match shared.encoder.ping() {
                    Some(frame) => conn::message(frame),
                    None => Message::Ping(Default::default()),
                };
                let _ = ws.send(msg).await;
            }
        }
    }
}
