//! What a benchmark run measures and what it records: the targets (server setups and client
//! protocols), the plan of scenario points, one record per measured point, and the bounds
//! that the harness and the report share.

use serde::{Deserialize, Serialize};

use crate::proto::Mode;

/// CPU (% of one core) that other processes may use during a window before the run is repeated.
pub const INTERFERENCE_PCT: f64 = 25.0;
/// Attempts at a point at most (the last one is kept even when disturbed, and flagged).
pub const ATTEMPTS: usize = 3;
/// Open loop: the latency bound of Azure SignalR's unit figures (p99 below 1 s), in µs; the
/// load stops rising for a target once its p99 reaches it.
pub const OPEN_LOOP_BOUND_US: f64 = 1_000_000.0;
/// Open loop: the strict latency bound (p99 below 100 ms), in µs.
pub const OPEN_LOOP_STRICT_US: f64 = 100_000.0;
/// Connections one point may open at most: one process may hold 20,000 open files on the
/// project's machines, and the relay holds its clients plus its server connections.
pub const MAX_CONNS: usize = 18_000;

/// How servers are deployed for a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deployment {
    /// The raw tokio-tungstenite floor server.
    Floor,
    /// `conformance-server`, self-hosted.
    Direct,
    /// `switchboard-service` + `conformance-server --service`: clients go through the relay.
    Relay,
    /// The Node.js `ws` 8 server (`bench/node/ws-server.mjs`), the floor's operations.
    NodeWs,
    /// The Node.js socket.io 4.8 server (`bench/node/socketio-server.mjs`).
    SocketIo,
    /// The socketioxide (Rust Socket.IO) server (`socketioxide-server`).
    Socketioxide,
    /// A relay cluster: `redis-server`, several `switchboard-service --redis` nodes and
    /// `conformance-server --service` dialling the first; negotiate spreads clients over the
    /// nodes.
    Cluster,
}

impl Deployment {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Deployment::Floor => "floor",
            Deployment::Direct => "direct",
            Deployment::Relay => "relay",
            Deployment::NodeWs => "node-ws",
            Deployment::SocketIo => "socketio",
            Deployment::Socketioxide => "socketioxide",
            Deployment::Cluster => "cluster",
        }
    }

    /// Whether the deployment runs on Node.js (needs `node` and `bench/node/node_modules`).
    pub fn is_node(self) -> bool {
        matches!(self, Deployment::NodeWs | Deployment::SocketIo)
    }

    /// Whether this is Switchboard (self-hosted or through the relay).
    pub fn is_switchboard(self) -> bool {
        matches!(self, Deployment::Direct | Deployment::Relay | Deployment::Cluster)
    }

    /// The protocol of the readiness probe.
    pub(crate) fn probe_mode(self) -> Mode {
        match self {
            Deployment::Floor | Deployment::NodeWs => Mode::Raw,
            Deployment::Direct | Deployment::Relay | Deployment::Cluster => Mode::Json,
            Deployment::SocketIo | Deployment::Socketioxide => Mode::SocketIo,
        }
    }

    /// The binaries of this workspace it runs (looked for in `--bin-dir`).
    pub(crate) fn binaries(self) -> &'static [&'static str] {
        match self {
            Deployment::Floor => &["floor-server"],
            Deployment::Direct => &["conformance-server"],
            Deployment::Relay | Deployment::Cluster => &["switchboard-service", "conformance-server"],
            Deployment::NodeWs | Deployment::SocketIo => &[],
            Deployment::Socketioxide => &["socketioxide-server"],
        }
    }
}

/// A server setup plus the protocol clients speak to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The servers.
    pub deployment: Deployment,
    /// The client protocol.
    pub mode: Mode,
}

impl Target {
    /// Every target, in report order: the floor, Switchboard, the comparators.
    pub const ALL: [Target; 9] = [
        Target {
            deployment: Deployment::Floor,
            mode: Mode::Raw,
        },
        Target {
            deployment: Deployment::Direct,
            mode: Mode::Json,
        },
        Target {
            deployment: Deployment::Direct,
            mode: Mode::MsgPack,
        },
        Target {
            deployment: Deployment::Relay,
            mode: Mode::Json,
        },
        Target {
            deployment: Deployment::Relay,
            mode: Mode::MsgPack,
        },
        Target {
            deployment: Deployment::NodeWs,
            mode: Mode::Raw,
        },
        Target {
            deployment: Deployment::SocketIo,
            mode: Mode::SocketIo,
        },
        Target {
            deployment: Deployment::Socketioxide,
            mode: Mode::SocketIo,
        },
        Target {
            deployment: Deployment::Cluster,
            mode: Mode::Json,
        },
    ];

    /// `floor`, `direct-json`, `relay-msgpack`, `node-ws`, `socketio`, `socketioxide`.
    pub fn name(self) -> String {
        if self.deployment.is_switchboard() {
            format!("{}-{}", self.deployment.name(), self.mode.name())
        } else {
            self.deployment.name().to_owned()
        }
    }

    /// Whether the target takes part in a scenario: the comparators run echo, broadcast and
    /// idle (they have no client-method echo, no groups); the open-loop ramp runs on the floor
    /// and Switchboard; idle memory runs one protocol per deployment (JSON for Switchboard).
    pub fn supports(self, scenario: &str) -> bool {
        if self.deployment == Deployment::Cluster {
            // Against one relay: cross-node broadcast and echo; and the many-node idle point.
            return matches!(scenario, "echo" | "broadcast" | "cluster-idle");
        }
        match scenario {
            "echo" | "broadcast" => true,
            "echo-measure" | "group" | "open-loop" => {
                self.deployment == Deployment::Floor || self.deployment.is_switchboard()
            }
            "idle" => self.mode != Mode::MsgPack,
            // Client migration: the relay between app servers, one protocol.
            "migrate" => self.deployment == Deployment::Relay && self.mode == Mode::Json,
            // The soak: Switchboard self-hosted and through the relay, one protocol.
            "soak" => self.deployment.is_switchboard() && self.mode == Mode::Json,
            _ => false,
        }
    }
}

/// Scenario names `run` knows, in run order.
pub const SCENARIOS: [&str; 9] = [
    "echo",
    "echo-measure",
    "broadcast",
    "group",
    "open-loop",
    "idle",
    "migrate",
    "cluster-idle",
    "soak",
];

/// What to run: the scenario points, repetitions and timings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Plan {
    /// Connections for the echo scenario.
    pub echo_conns: Vec<usize>,
    /// Payload sizes for the echo scenario.
    pub echo_payloads: Vec<usize>,
    /// Receivers for the broadcast scenario.
    pub broadcast_receivers: Vec<usize>,
    /// Payload sizes for the broadcast scenario.
    pub broadcast_payloads: Vec<usize>,
    /// Connections for the echo-measure scenario (`EchoMeasure` answered by `Measure`).
    pub echo_measure_conns: Vec<usize>,
    /// Payload sizes for the echo-measure scenario.
    pub echo_measure_payloads: Vec<usize>,
    /// Receivers for the group scenario (everyone in one group, `GroupMeasure`).
    pub group_receivers: Vec<usize>,
    /// Payload sizes for the group scenario.
    pub group_payloads: Vec<usize>,
    /// Broadcasts in flight at most.
    pub window: usize,
    /// Connections for the idle-memory scenario.
    pub idle_conns: Vec<usize>,
    /// Client migration: connections moved from one app server to another (open-loop `Echo`
    /// at `open_loop_rate` per connection meanwhile).
    pub migrate_conns: Vec<usize>,
    /// Open loop: the connection counts tried, in rising order, per target until p99 reaches
    /// [`OPEN_LOOP_BOUND_US`].
    pub open_loop_conns: Vec<usize>,
    /// Open loop: payload bytes of each `Echo`.
    pub open_loop_payload: usize,
    /// Open loop: `Echo` requests per second per connection.
    pub open_loop_rate: f64,
    /// Open loop: traffic before the window, in milliseconds.
    pub open_loop_warmup_ms: u64,
    /// Open loop: window length, in milliseconds.
    pub open_loop_duration_ms: u64,
    /// Repetitions of everything.
    pub reps: usize,
    /// Warm-up before each window, in milliseconds.
    pub warmup_ms: u64,
    /// Measurement window, in milliseconds.
    pub duration_ms: u64,
    /// Time idle connections settle before memory is read, in milliseconds.
    pub idle_settle_ms: u64,
    /// Relay nodes of the `cluster` target under load.
    pub cluster_nodes: usize,
    /// Idle connections held by a relay cluster of `cluster_idle_nodes` nodes (each point split
    /// over several generator processes).
    pub cluster_idle_conns: Vec<usize>,
    /// Relay nodes of the cluster idle points.
    pub cluster_idle_nodes: usize,
    /// The most connections one generator process opens (a process may hold 20,000 files).
    pub generator_conns: usize,
    /// The soak: connections held while others churn.
    pub soak_conns: Vec<usize>,
    /// The soak's length, in milliseconds.
    pub soak_duration_ms: u64,
    /// The soak: churning connections opened per second (each echoes and leaves).
    pub soak_churn_rate: f64,
    /// The soak: how often the servers' memory, descriptors and threads are read, in
    /// milliseconds.
    pub soak_sample_ms: u64,
    /// Scenarios to run (names as in [`SCENARIOS`]).
    pub scenarios: Vec<String>,
    /// Targets to run (names as [`Target::name`]).
    pub targets: Vec<String>,
}

impl Default for Plan {
    fn default() -> Self {
        Self::full()
    }
}

impl Plan {
    /// The full benchmark (about 50 minutes on two cores).
    pub fn full() -> Self {
        Self {
            echo_conns: vec![1, 10, 100, 1000],
            echo_payloads: vec![64, 2048],
            broadcast_receivers: vec![1000, 10000],
            broadcast_payloads: vec![64, 2048],
            echo_measure_conns: vec![100],
            echo_measure_payloads: vec![64],
            group_receivers: vec![1000],
            group_payloads: vec![64],
            window: 4,
            idle_conns: vec![1000, 5000, 10000, 18000],
            migrate_conns: vec![1000, 10000],
            open_loop_conns: vec![1000, 2000, 5000, 10000, 18000],
            open_loop_payload: 2048,
            open_loop_rate: 1.0,
            open_loop_warmup_ms: 2000,
            open_loop_duration_ms: 5000,
            reps: 3,
            warmup_ms: 1000,
            duration_ms: 3000,
            idle_settle_ms: 1000,
            cluster_nodes: 3,
            cluster_idle_conns: vec![100_000],
            cluster_idle_nodes: 6,
            generator_conns: 16_000,
            soak_conns: vec![18_000],
            soak_duration_ms: 600_000,
            soak_churn_rate: 20.0,
            soak_sample_ms: 30_000,
            scenarios: SCENARIOS.iter().map(|s| s.to_string()).collect(),
            targets: Target::ALL.iter().map(|t| t.name()).collect(),
        }
    }

    /// A few seconds in all: tiny counts, one repetition, every scenario and target.
    pub fn smoke() -> Self {
        Self {
            echo_conns: vec![4],
            echo_payloads: vec![64, 2048],
            broadcast_receivers: vec![20],
            broadcast_payloads: vec![64],
            echo_measure_conns: vec![4],
            echo_measure_payloads: vec![64],
            group_receivers: vec![20],
            group_payloads: vec![64],
            window: 2,
            idle_conns: vec![50],
            migrate_conns: vec![20],
            open_loop_conns: vec![20],
            open_loop_rate: 20.0,
            open_loop_warmup_ms: 50,
            open_loop_duration_ms: 300,
            reps: 1,
            warmup_ms: 20,
            duration_ms: 120,
            idle_settle_ms: 100,
            cluster_idle_conns: vec![60],
            cluster_idle_nodes: 2,
            generator_conns: 25,
            soak_conns: vec![30],
            soak_duration_ms: 1500,
            soak_churn_rate: 10.0,
            soak_sample_ms: 300,
            ..Self::full()
        }
    }
}

impl Plan {
    /// The most connections any point opens.
    pub fn conns_max(&self) -> usize {
        self.echo_conns
            .iter()
            .chain(&self.broadcast_receivers)
            .chain(&self.echo_measure_conns)
            .chain(&self.group_receivers)
            .chain(&self.idle_conns)
            .chain(&self.migrate_conns)
            .chain(&self.open_loop_conns)
            .chain(&self.soak_conns)
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// One line of `results.jsonl`: one (scenario, target, point, repetition).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// `echo`, `broadcast` or `idle`.
    pub scenario: String,
    /// Target name.
    pub target: String,
    /// `floor`, `direct` or `relay`.
    pub deployment: String,
    /// `raw`, `json` or `msgpack`.
    pub mode: String,
    /// Connections (echo, idle) or receivers (broadcast).
    pub conns: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Broadcasts in flight at most.
    pub window: Option<usize>,
    /// Repetition, from 1.
    pub rep: usize,
    /// Whether the run completed with nothing lost and no error.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Echo round trips or broadcast deliveries per second.
    pub rate: f64,
    /// Messages inside the window.
    pub count: u64,
    /// Window length in seconds.
    pub window_secs: f64,
    /// Latency percentiles in microseconds (echo: round trip; broadcast: send → delivery).
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest latency.
    pub max_us: f64,
    /// Server CPU (all server processes) per message, in microseconds.
    pub cpu_us_per_msg: Option<f64>,
    /// Server CPU in % of one core during the window.
    pub server_cpu_pct: Option<f64>,
    /// The relay's share of `cpu_us_per_msg` (relay deployment).
    pub relay_cpu_us_per_msg: Option<f64>,
    /// The hub's share of `cpu_us_per_msg` (direct and relay deployments).
    pub hub_cpu_us_per_msg: Option<f64>,
    /// redis-server's share of `cpu_us_per_msg` (a relay cluster).
    pub redis_cpu_us_per_msg: Option<f64>,
    /// Load-generator CPU in % of one core during the window.
    pub loadgen_cpu_pct: f64,
    /// CPU used during the window by everything but the servers and the generator (other
    /// processes, interrupts), in % of one core: the interference indicator.
    pub other_cpu_pct: Option<f64>,
    /// Requests or broadcasts sent.
    pub sent: u64,
    /// Messages lost.
    pub lost: u64,
    /// Errors seen by the generator.
    pub errors: u64,
    /// Seconds to open all connections.
    pub connect_secs: f64,
    /// Connections opened per second (`conns / connect_secs`).
    pub connect_rate: Option<f64>,
    /// Open loop: requests offered per second (connections × rate per connection).
    pub offered_rate: Option<f64>,
    /// Open loop: p99 reached [`OPEN_LOOP_BOUND_US`]: the target is past what it can serve
    /// within 1 s, the ramp stops here (requests still unanswered after the drain are then
    /// expected and counted in `lost`, not an error).
    pub saturated: bool,
    /// Open loop: the largest latency of an answered request, µs.
    pub answered_max_us: Option<f64>,
    /// Open loop: how late the generator sent a measured request after its scheduled time,
    /// 50th percentile, µs (tokio's timers tick every millisecond).
    pub send_lag_p50_us: Option<f64>,
    /// Open loop: the send lag's 99th percentile, µs (far above 1 ms: the generator fell behind).
    pub send_lag_p99_us: Option<f64>,
    /// Idle: server RSS before connecting, KiB (the hub in the relay deployment).
    pub rss_before_kb: Option<u64>,
    /// Idle: server RSS with the connections held, KiB.
    pub rss_after_kb: Option<u64>,
    /// Idle: (after − before) / conns, in KB (1000 bytes).
    pub kb_per_conn: Option<f64>,
    /// Idle, relay deployment: the relay's RSS before, KiB.
    pub relay_rss_before_kb: Option<u64>,
    /// Idle, relay deployment: the relay's RSS after, KiB.
    pub relay_rss_after_kb: Option<u64>,
    /// Idle, relay deployment: the relay's KB per connection.
    pub relay_kb_per_conn: Option<f64>,
    /// Migrate: milliseconds from the old app server's SIGINT until it exited (every client
    /// moved and its invocations finished).
    pub migrate_ms: Option<f64>,
    /// 1-minute load average when the run started.
    pub loadavg_1m: Option<f64>,
    /// TCP sockets in TIME_WAIT when the run started.
    pub time_wait: Option<u64>,
    /// Whether servers and generator were pinned to different cores.
    pub pinned: bool,
    /// Attempt number at this point (a disturbed run is repeated).
    pub attempt: usize,
    /// Other processes used more than [`INTERFERENCE_PCT`] of a core during the window.
    pub disturbed: bool,
    /// A later attempt replaced this run: it is kept here but left out of the tables.
    pub superseded: bool,
    /// Seconds spent waiting for other processes to calm down before the run.
    pub waited_secs: f64,
    /// Soak: each server process's readings, every `soak_sample_ms`.
    pub soak_samples: Vec<SoakSample>,
}

/// One reading of one server process during the soak.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SoakSample {
    /// Seconds since the held connections were all open.
    pub secs: f64,
    /// The process (`conformance-server`, `switchboard-service`).
    pub process: String,
    /// Resident set size, KiB.
    pub rss_kb: Option<u64>,
    /// Open file descriptors.
    pub fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
}
