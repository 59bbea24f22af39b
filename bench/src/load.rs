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
//!
//! In the open-loop scenario every connection sends `rate` echo requests per second on a fixed
//! schedule whatever the answers do (the connections' schedules spread evenly over one period);
//! latency runs from the scheduled send time, so a server that falls behind shows its queueing
//! delay instead of slowing the senders down (no coordinated omission). Requests scheduled
//! inside the window are measured; a request still unanswered when the drain ends counts as
//! lost and enters the histogram with the time it waited so far (a lower bound).

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
    /// Open loop: every connection sends `Echo(ticks, payload)` `rate` times per second on a
    /// fixed schedule, without waiting for answers; latency from the scheduled send time.
    OpenLoop,
    /// Connections are held (with pings) while others churn: `rate` new connections a second
    /// each connect, echo [`SOAK_ECHOES`] times and disconnect, until told to stop.
    Soak,
}

/// The echoes each churning connection of the soak makes before it leaves.
pub const SOAK_ECHOES: u64 = 3;

impl Scenario {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Echo => "echo",
            Scenario::EchoMeasure => "echo-measure",
            Scenario::Broadcast => "broadcast",
            Scenario::Group => "group",
            Scenario::Idle => "idle",
            Scenario::OpenLoop => "open-loop",
            Scenario::Soak => "soak",
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
    /// Open loop: requests per second per connection.
    #[serde(default = "default_rate")]
    pub rate: f64,
}

fn default_drain_ms() -> u64 {
    10_000
}

fn default_rate() -> f64 {
    1.0
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
    /// Open loop: the largest latency of a request that was answered, in microseconds
    /// (tells a server that fell behind from one that dropped requests).
    pub answered_max_us: f64,
    /// Open loop: 50th percentile of how late the generator sent a measured request after its
    /// scheduled time, in microseconds (tokio's timers have a 1 ms resolution).
    pub send_lag_p50_us: f64,
    /// Open loop: 99th percentile of the send lag, in microseconds; far above 1 ms means the
    /// generator itself fell behind.
    pub send_lag_p99_us: f64,
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
    /// Open loop: the scheduled times (ticks) measured, `[start, end)`.
    window_ticks: Cell<(u64, u64)>,
    /// Open loop: the largest latency of an answered request, ns.
    answered_max: Cell<u64>,
    /// Open loop: send time − scheduled time of measured requests, ns.
    send_lag: RefCell<Histogram<u64>>,
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

    /// The ticks of a point in time (as [`Shared::now`] would read then).
    fn ticks_at(&self, at: tokio::time::Instant) -> u64 {
        at.into_std().saturating_duration_since(self.base).as_nanos() as u64 + 1
    }

    /// Open loop: whether a request scheduled at `ticks` is measured.
    fn scheduled_in_window(&self, ticks: u64) -> bool {
        let (start, end) = self.window_ticks.get();
        (start..end).contains(&ticks)
    }

    /// Answers the server's Engine.IO ping (Socket.IO mode).
    async fn pong<S>(&self, sink: &mut S) -> Result<(), String>
    where
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        match self.encoder.pong() {
            Some(frame) => sink.send(conn::message(frame)).await.map_err(|e| format!("pong: {e}")),
            None => Ok(()),
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
        window_ticks: Cell::new((0, 0)),
        answered_max: Cell::new(0),
        send_lag: RefCell::new(Histogram::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| e.to_string())?),
    });
    procstat::ensure_open_files(spec.conns as u64 + OPEN_FILES_MARGIN)?;
    let mut result = LoadResult::default();
    let connect_started = Instant::now();
    let conns = open_all(&spec).await?;
    result.connected = conns.len();
    result.connect_secs = connect_started.elapsed().as_secs_f64();
    match spec.scenario {
        Scenario::Echo | Scenario::EchoMeasure => echo(&spec, &shared, conns, &mut result).await,
        Scenario::Broadcast | Scenario::Group => broadcast(&spec, &shared, conns, &mut result).await?,
        Scenario::Idle => idle(&shared, conns, &mut result).await,
        Scenario::OpenLoop => open_loop(&spec, &shared, conns, &mut result).await,
        Scenario::Soak => soak(&spec, &shared, conns, &mut result).await,
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
    result.answered_max_us = shared.answered_max.get() as f64 / 1000.0;
    let lag = shared.send_lag.borrow();
    if !lag.is_empty() {
        result.send_lag_p50_us = lag.value_at_quantile(0.5) as f64 / 1000.0;
        result.send_lag_p99_us = lag.value_at_quantile(0.99) as f64 / 1000.0;
    }
    Ok(result)
}

/// Descriptors the generator needs besides its connections (negotiate requests under way,
/// standard streams, the runtime's own).
const OPEN_FILES_MARGIN: u64 = 128;

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
                    Incoming::Completion { ticks, payload_len } if !through_measure || !mode.is_signalr() => {
                        Some((ticks, payload_len))
                    }
                    Incoming::Measure { ticks, payload_len } if through_measure => Some((ticks, payload_len)),
                    Incoming::CompletionError(e) => return Err(format!("error completion: {e}")),
                    Incoming::Close(e) => return Err(format!("closed by the server: {e:?}")),
                    Incoming::EngineIoPing => {
                        shared.pong(&mut ws).await?;
                        None
                    }
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

async fn open_loop(spec: &LoadSpec, shared: &Rc<Shared>, conns: Vec<(Ws, Vec<Incoming>)>, result: &mut LoadResult) {
    let n = conns.len().max(1);
    let period = Duration::from_secs_f64(1.0 / spec.rate.clamp(1e-3, 1e6));
    say("ready");
    let t0 = tokio::time::Instant::now() + Duration::from_millis(10);
    let window_start = t0 + Duration::from_millis(spec.warmup_ms);
    let window_end = window_start + Duration::from_millis(spec.duration_ms);
    let drain_end = window_end + Duration::from_millis(spec.drain_ms.max(1));
    shared
        .window_ticks
        .set((shared.ticks_at(window_start), shared.ticks_at(window_end)));
    let mut tasks = Vec::with_capacity(n);
    for (index, (ws, _)) in conns.into_iter().enumerate() {
        let shared = shared.clone();
        // the schedules spread evenly over one period
        let first = t0 + period.mul_f64(index as f64 / n as f64);
        tasks.push(tokio::task::spawn_local(async move {
            if let Err(e) = open_loop_conn(ws, &shared, first, period, window_end, drain_end).await {
                shared.error(e);
            }
        }));
    }
    tokio::time::sleep_until(window_start).await;
    let cpu0 = procstat::cpu_micros("self");
    say("start");
    let started = Instant::now();
    tokio::time::sleep_until(window_end).await;
    let window = started.elapsed();
    say("end");
    result.window_secs = window.as_secs_f64();
    if let (Some(a), Some(b)) = (cpu0, procstat::cpu_micros("self")) {
        result.loadgen_cpu_pct = (b - a) as f64 / window.as_micros().max(1) as f64 * 100.0;
    }
    shared.stop.set(true);
    // the drain: every task ends once its requests are answered or the drain is over
    for task in tasks {
        let _ = task.await;
    }
    result.lost = shared.sent.get().saturating_sub(shared.total.get());
}

/// One open-loop connection: sends on schedule until `window_end`, reads answers until every
/// request is answered or `drain_end`.
async fn open_loop_conn(
    mut ws: Ws,
    shared: &Shared,
    first: tokio::time::Instant,
    period: Duration,
    window_end: tokio::time::Instant,
    drain_end: tokio::time::Instant,
) -> Result<(), String> {
    let mode = shared.encoder.mode();
    let mut next = first;
    let mut id = 0u64;
    // scheduled ticks of the requests not answered yet, oldest first
    let mut outstanding: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let mut incoming = Vec::new();
    loop {
        let sending = next < window_end;
        if !sending && outstanding.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            msg = ws.next() => {
                let msg = msg.ok_or("connection closed")?.map_err(|e| format!("read: {e}"))?;
                incoming.clear();
                conn::decode(mode, &msg, &mut incoming)?;
                for m in incoming.drain(..) {
                    match m {
                        Incoming::Completion { ticks, payload_len } => {
                            let at = outstanding
                                .iter()
                                .position(|&t| t == ticks)
                                .ok_or_else(|| format!("an answer to no request (ticks {ticks})"))?;
                            outstanding.remove(at);
                            if payload_len != shared.payload {
                                return Err(format!("echo of {payload_len} B, sent {} B", shared.payload));
                            }
                            let latency = shared.now().saturating_sub(ticks);
                            shared.total.set(shared.total.get() + 1);
                            shared.answered_max.set(shared.answered_max.get().max(latency));
                            if shared.scheduled_in_window(ticks) {
                                shared.in_window.set(shared.in_window.get() + 1);
                                shared.hist.borrow_mut().saturating_record(latency.max(1));
                            }
                        }
                        Incoming::CompletionError(e) => return Err(format!("error completion: {e}")),
                        Incoming::Close(e) => return Err(format!("closed by the server: {e:?}")),
                        Incoming::EngineIoPing => shared.pong(&mut ws).await?,
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(next), if sending => {
                id += 1;
                let ticks = shared.ticks_at(next);
                next += period;
                outstanding.push_back(ticks);
                shared.sent.set(shared.sent.get() + 1);
                if shared.scheduled_in_window(ticks) {
                    shared.send_lag.borrow_mut().saturating_record(shared.now().saturating_sub(ticks).max(1));
                }
                ws.send(conn::message(shared.encoder.echo(id, ticks)))
                    .await
                    .map_err(|e| format!("send: {e}"))?;
            }
            _ = tokio::time::sleep_until(drain_end), if !sending => {
                // unanswered: lost; measured ones enter the histogram with what they waited so far
                let now = shared.now();
                let mut hist = shared.hist.borrow_mut();
                for &ticks in outstanding.iter().filter(|&&t| shared.scheduled_in_window(t)) {
                    hist.saturating_record(now.saturating_sub(ticks).max(1));
                }
                return Ok(());
            }
        }
    }
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
        // the receiver answers Engine.IO pings through the sink, which the sender shares
        let sink = Rc::new(tokio::sync::Mutex::new(sink));
        if index == 0 {
            sender_sink = Some(sink.clone());
        }
        let shared = shared.clone();
        let keepalive = index != 0; // the sender's connection sends anyway
        tokio::task::spawn_local(async move { receive(stream, sink, keepalive, early, &shared).await });
    }
    let sink = sender_sink.ok_or("no sender")?;
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
        sink.lock()
            .await
            .send(conn::message(encode(0)))
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
                if let Err(e) = sink.lock().await.send(conn::message(frame)).await {
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
    if !mode.is_signalr() {
        return Ok(()); // the floor and the comparators have one implicit group: everyone
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

/// A receiver: counts `Measure` deliveries, records their latency, sends pings every 15 s when
/// `keepalive`, answers Engine.IO pings.
async fn receive(
    mut stream: futures_util::stream::SplitStream<Ws>,
    sink: Rc<tokio::sync::Mutex<WsSink>>,
    keepalive: bool,
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
                Incoming::EngineIoPing => {
                    if let Err(e) = shared.pong(&mut *sink.lock().await).await {
                        shared.error(e);
                        return;
                    }
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
            _ = ping.tick(), if keepalive => {
                let msg = match shared.encoder.ping() {
                    Some(frame) => conn::message(frame),
                    None => Message::Ping(Default::default()),
                };
                let _ = sink.lock().await.send(msg).await;
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

async fn soak(spec: &LoadSpec, shared: &Rc<Shared>, conns: Vec<(Ws, Vec<Incoming>)>, result: &mut LoadResult) {
    for (ws, _) in conns {
        let shared = shared.clone();
        tokio::task::spawn_local(async move { hold(ws, &shared).await });
    }
    say("ready");
    // The churn: `rate` connections a second, each on a source address of its own turn (the
    // held ones keep theirs), until a line on standard input (or its end).
    let churn = {
        let shared = shared.clone();
        let url = spec.url.clone();
        let mode = spec.mode;
        let every = Duration::from_secs_f64(1.0 / spec.rate.max(0.1));
        let first = spec.conns;
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(every);
            let mut visits = Vec::new();
            for index in first.. {
                tick.tick().await;
                if shared.stop.get() {
                    break;
                }
                let shared = shared.clone();
                let url = url.clone();
                visits.push(tokio::task::spawn_local(async move {
                    if let Err(e) = visit(&url, mode, index, &shared).await {
                        shared.error(format!("churn: {e}"));
                    }
                }));
                visits.retain(|visit| !visit.is_finished());
            }
            for visit in visits {
                let _ = visit.await;
            }
        })
    };
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let _ = tokio::io::AsyncBufReadExt::read_line(&mut stdin, &mut line).await;
    shared.stop.set(true);
    let _ = churn.await;
    result.lost = shared.sent.get().saturating_sub(shared.total.get());
}

/// One churning client of the soak: connects, echoes [`SOAK_ECHOES`] times, closes.
async fn visit(url: &str, mode: Mode, index: usize, shared: &Shared) -> Result<(), String> {
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(20), conn::connect(url, mode, index))
        .await
        .map_err(|_| "connect timed out after 20 s".to_owned())??;
    let mut incoming = Vec::new();
    for id in 1..=SOAK_ECHOES {
        let ticks = shared.now();
        shared.sent.set(shared.sent.get() + 1);
        ws.send(conn::message(shared.encoder.echo(id, ticks)))
            .await
            .map_err(|e| format!("send: {e}"))?;
        'wait: loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .map_err(|_| "no answer within 10 s".to_owned())?
                .ok_or("connection closed")?
                .map_err(|e| format!("read: {e}"))?;
            incoming.clear();
            conn::decode(mode, &msg, &mut incoming)?;
            for m in incoming.drain(..) {
                match m {
                    Incoming::Completion { ticks: t, .. } if t == ticks => {
                        shared.total.set(shared.total.get() + 1);
                        break 'wait;
                    }
                    Incoming::CompletionError(e) => return Err(format!("error completion: {e}")),
                    Incoming::Close(e) => return Err(format!("closed by the server: {e:?}")),
                    _ => {}
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
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
                        let bad = conn::decode(mode, &msg, &mut incoming).is_err()
                            || incoming.iter().any(|m| matches!(m, Incoming::Close(_)));
                        let ping = incoming.iter().any(|m| matches!(m, Incoming::EngineIoPing));
                        bad || (ping && shared.pong(&mut ws).await.is_err())
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
