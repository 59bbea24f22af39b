//! The relay's settings, and where they come from: defaults, then a TOML file, then the
//! environment, then the command line (each overrides the one before).

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// What `--help` prints.
pub const HELP: &str = "\
switchboard-service: a self-hostable SignalR relay, wire-compatible with the Azure SignalR
Service server protocol. Clients connect at /client (negotiate, WebSockets, Server-Sent
Events, long polling); app servers connect at /server and receive their clients' traffic.

USAGE:
    switchboard-service [OPTIONS]

OPTIONS:
    --config FILE             Read settings from a TOML file (keys below).
    --listen ADDR             Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a
                              free port. Once accepting, one line goes to standard output:
                              `Now listening on: http://ADDR` (https:// with TLS).
    --access-key KEY          An access key that app servers sign tokens with (HMAC over the
                              UTF-8 bytes of the key, HS256 or HS512). Repeat it to accept
                              several keys at once, for key rotation. Command-line arguments
                              are visible to other local users: prefer the environment or the
                              file for real keys.
    --redis URL               Join a relay cluster: every node given the same Redis
                              (redis://[user:password@]host:port/[db], or redis+unix:///path)
                              serves every hub with the others. Clients may connect to any
                              node; app servers reach every node through the one they dial.
    --node-id ID              This node's name in the cluster (letters, digits, '.', '_', '-';
                              64 at most) [default: random].
    --advertise URL           Where other nodes and clients reach this node
                              [default: http://LISTEN-ADDRESS].
    --tls-cert FILE           Serve HTTPS: the PEM certificate chain (the relay's certificate
                              first). Needs --tls-key.
    --tls-key FILE            The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    --stop-when-stdin-closes  Exit when standard input reaches end of file.
    -h, --help                Print this help.
    -V, --version             Print the version.

ENVIRONMENT:
    SWITCHBOARD_LISTEN        Like --listen.
    SWITCHBOARD_ACCESS_KEYS   Access keys, comma-separated (like --access-key).
    SWITCHBOARD_REDIS         Like --redis.
    SWITCHBOARD_NODE_ID       Like --node-id.
    SWITCHBOARD_ADVERTISE     Like --advertise.
    SWITCHBOARD_TLS_CERT      Like --tls-cert.
    SWITCHBOARD_TLS_KEY       Like --tls-key.
    SSL_CERT_FILE             Trusted roots for the relay's own TLS connections (to other
                              nodes) instead of the system's.
    RUST_LOG                  Log filter for standard error [default: info].

CONFIG FILE (TOML; every key optional):
    listen = \"127.0.0.1:8080\"       # like --listen
    access_keys = [\"key1\", \"key2\"]  # like --access-key
    max_clients_per_hub = 10000     # refuse clients past this many per hub [default: no limit]
    clients_per_server_connection = 1000
                                    # past this many clients on one server connection, ask its
                                    #   app server for one more (it opens an OnDemand connection
                                    #   unless it has MaxHubServerConnectionCount) [default: 1000]
    max_message_size = 1048576      # bytes: the frame and POST limits of the client transports
                                    #   (4x this, 1 MiB at least); a client handshake may be this
                                    #   or 32 KiB long, the smaller (past it: \"Handshake was
                                    #   canceled.\", as a self-hosted server answers) [default: 1048576]
    max_server_message_size = 16777216
                                    # bytes: largest record from an app server; a larger one
                                    #   closes that server connection [default: 16777216]
    max_client_queued_bytes = 4194304
                                    # bytes waiting for one client; a client that does not read
                                    #   is closed past this (with the Close error a self-hosted
                                    #   server sends), one larger message passes alone
                                    #   [default: 4194304]
    max_client_queued_messages = 4096
                                    # the same bound in messages [default: 4096]
    max_server_queued_bytes = 8388608
                                    # bytes of records waiting for one app-server connection;
                                    #   clients sending through it wait past this [default: 8388608]
    handshake_timeout_secs = 15     # time for a client's or app server's handshake [default: 15]
    server_keep_alive_secs = 5      # ping an app server sent nothing this long [default: 5]
    server_timeout_secs = 30        # close an app-server connection silent this long [default: 30]
    request_header_timeout_secs = 30
                                    # close an HTTP connection whose request headers take longer
                                    #   (as Kestrel does) [default: 30]
    max_connections = 18000         # client connections this node holds at most; more are
                                    #   refused with 503 [default: no limit]
    max_connections_per_address = 100
                                    # client connections one address (the TCP peer) holds at
                                    #   most; more are refused with 429 [default: no limit]
    negotiates_per_address_per_second = 20
                                    # negotiate requests per address and second; more get 429
                                    #   with Retry-After: 1 [default: no limit]
    connects_per_address_per_second = 20
                                    # WebSockets and event streams opened per address and
                                    #   second; more get 429 with Retry-After: 1 [default: no limit]
    redis = \"redis://127.0.0.1:6379/\" # like --redis
    node_id = \"relay-1\"             # like --node-id
    advertise = \"http://10.0.0.5:8080\"
                                    # like --advertise
    tls_cert = \"/etc/switchboard/cert.pem\"
                                    # like --tls-cert
    tls_key = \"/etc/switchboard/key.pem\"
                                    # like --tls-key
    node_timeout_secs = 10          # a cluster node silent on Redis this long is dead for the
                                    #   others, which tell app servers its clients are gone
                                    #   [default: 10]
    cluster_prefix = \"switchboard\"  # the cluster's Redis keys and channels start with this
                                    #   (several clusters may share one Redis) [default: switchboard]
    redirect_clients = true         # negotiate sends a new client to the node with the fewest
                                    #   clients when that is another one [default: true]

Settings apply in this order, later ones winning: defaults, the file, the environment, the
command line. At least one access key is required.

ENDPOINTS:
    POST /client/negotiate?hub=HUB, /client/?hub=HUB   clients (JWT audience
                              http://HOST/client/?hub=HUB, HOST without port, HUB lower-cased)
    GET  /server/?hub=HUB&cid=ID                       app servers, WebSocket (audience
                              http://HOST/server/?hub=HUB)
    GET  /api/health                                   {\"status\":\"ok\"}, and in a cluster the
                              node, Redis's state and the live peers
    GET  /metrics                                      Prometheus text format
";

/// The relay's settings.
///
/// Build one with [`Config::new`] (or `Config { …, ..Config::default() }`) to embed a relay,
/// or with [`Config::from_args`] the way the binary does.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The address to listen on (`host:port`; port 0 picks a free port).
    pub listen: String,
    /// The keys that client and server tokens may be signed with; any of them is accepted.
    pub access_keys: Vec<String>,
    /// Clients refused past this many in one hub; `None` for no limit.
    pub max_clients_per_hub: Option<usize>,
    /// Past this many clients pinned to one server connection, the relay asks that app server
    /// for another connection to the hub (a `target` ping; the app opens an OnDemand
    /// connection unless it holds its `MaxHubServerConnectionCount`), once per connection.
    pub clients_per_server_connection: usize,
    /// The client transports accept frames and POST bodies of four times this, in bytes (1 MiB
    /// at least); a client handshake may be this or 32 KiB long, whichever is smaller.
    pub max_message_size: usize,
    /// The largest record an app server may send, in bytes; a larger one closes its
    /// connection.
    pub max_server_message_size: usize,
    /// The bytes waiting for one client before it is closed as not reading.
    pub max_client_queued_bytes: usize,
    /// The messages waiting for one client before it is closed as not reading.
    pub max_client_queued_messages: usize,
    /// The bytes of records waiting for one app-server connection before its senders wait.
    pub max_server_queued_bytes: usize,
    /// How long a client or an app server has to send its handshake.
    pub handshake_timeout: Duration,
    /// The relay pings an app-server connection it has sent nothing to for this long.
    pub server_keep_alive_interval: Duration,
    /// An app-server connection that sends nothing (not even a ping) for this long is closed.
    pub server_timeout: Duration,
    /// An HTTP connection whose request headers have not all come within this is closed.
    pub request_header_timeout: Duration,
    /// The limits on clients (all off by default).
    pub limits: crate::limits::Limits,
    /// The Redis of the relay cluster this node joins; `None` for a relay on its own.
    pub redis: Option<String>,
    /// This node's id in the cluster; random when `None`.
    pub node_id: Option<String>,
    /// Where other nodes and clients reach this node; `http(s)://{listen address}` when `None`.
    pub advertise: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (and [`tls_key`](Self::tls_key)).
    pub tls_cert: Option<String>,
    /// The PEM private key of [`tls_cert`](Self::tls_cert).
    pub tls_key: Option<String>,
    /// A cluster node whose heartbeat stops for this long is dead for the others.
    pub node_timeout: Duration,
    /// The start of the cluster's Redis keys and channels.
    pub cluster_prefix: String,
    /// In a cluster, negotiate sends a new client to the node with the fewest clients.
    pub redirect_clients: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".to_owned(),
            access_keys: Vec::new(),
            max_clients_per_hub: None,
            clients_per_server_connection: 1000,
            max_message_size: 1 << 20,
            max_server_message_size: 16 << 20,
            max_client_queued_bytes: 4 << 20,
            max_client_queued_messages: 4096,
            max_server_queued_bytes: switchboard::protocol::service::link::QUEUE_BYTES,
            handshake_timeout: Duration::from_secs(15),
            server_keep_alive_interval: switchboard::protocol::service::link::KEEP_ALIVE_INTERVAL,
            server_timeout: switchboard::protocol::service::link::RECEIVE_TIMEOUT,
            request_header_timeout: Duration::from_secs(30),
            limits: crate::limits::Limits::default(),
            redis: None,
            node_id: None,
            advertise: None,
            tls_cert: None,
            tls_key: None,
            node_timeout: Duration::from_secs(10),
            cluster_prefix: "switchboard".to_owned(),
            redirect_clients: true,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("access_keys", &format_args!("[{} redacted]", self.access_keys.len()))
            .field("max_clients_per_hub", &self.max_clients_per_hub)
            .field("clients_per_server_connection", &self.clients_per_server_connection)
            .field("max_message_size", &self.max_message_size)
            .field("max_server_message_size", &self.max_server_message_size)
            .field("max_client_queued_bytes", &self.max_client_queued_bytes)
            .field("max_client_queued_messages", &self.max_client_queued_messages)
            .field("max_server_queued_bytes", &self.max_server_queued_bytes)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("server_keep_alive_interval", &self.server_keep_alive_interval)
            .field("server_timeout", &self.server_timeout)
            .field("request_header_timeout", &self.request_header_timeout)
            // The URL may hold a password.
            .field("redis", &self.redis.as_ref().map(|_| "[redacted]"))
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .field("limits", &self.limits)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("node_timeout", &self.node_timeout)
            .field("cluster_prefix", &self.cluster_prefix)
            .field("redirect_clients", &self.redirect_clients)
            .finish()
    }
}

/// What the command line asks for.
// Made once per process: a boxed Config would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the relay.
    Run {
        /// The settings.
        config: Config,
        /// Exit when standard input reaches end of file.
        stop_when_stdin_closes: bool,
    },
    /// Print [`HELP`].
    Help,
    /// Print the version.
    Version,
}

/// The TOML file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    access_keys: Option<Vec<String>>,
    max_clients_per_hub: Option<usize>,
    clients_per_server_connection: Option<usize>,
    max_message_size: Option<usize>,
    max_server_message_size: Option<usize>,
    max_client_queued_bytes: Option<usize>,
    max_client_queued_messages: Option<usize>,
    max_server_queued_bytes: Option<usize>,
    handshake_timeout_secs: Option<u64>,
    server_keep_alive_secs: Option<u64>,
    server_timeout_secs: Option<u64>,
    request_header_timeout_secs: Option<u64>,
    redis: Option<String>,
    node_id: Option<String>,
    advertise: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    negotiates_per_address_per_second: Option<u32>,
    connects_per_address_per_second: Option<u32>,
    node_timeout_secs: Option<u64>,
    cluster_prefix: Option<String>,
    redirect_clients: Option<bool>,
}

impl Config {
    /// The defaults, accepting tokens signed with `access_key`.
    pub fn new(access_key: impl Into<String>) -> Self {
        Config {
            access_keys: vec![access_key.into()],
            ..Config::default()
        }
    }

    /// Sets the listen address.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// Applies the settings of a TOML document over these.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), Error> {
        let file: FileConfig = toml::from_str(text).map_err(|e| Error::config(format!("invalid config file: {e}")))?;
        let secs = |value: Option<u64>, target: &mut Duration| {
            if let Some(value) = value {
                *target = Duration::from_secs(value);
            }
        };
        if let Some(listen) = file.listen {
            self.listen = listen;
        }
        if let Some(keys) = file.access_keys {
            self.access_keys = keys;
        }
        if file.max_clients_per_hub.is_some() {
            self.max_clients_per_hub = file.max_clients_per_hub;
        }
        if let Some(count) = file.clients_per_server_connection {
            self.clients_per_server_connection = count;
        }
        if let Some(size) = file.max_message_size {
            self.max_message_size = size;
        }
        for (value, target) in [
            (file.max_server_message_size, &mut self.max_server_message_size),
            (file.max_client_queued_bytes, &mut self.max_client_queued_bytes),
            (file.max_client_queued_messages, &mut self.max_client_queued_messages),
            (file.max_server_queued_bytes, &mut self.max_server_queued_bytes),
        ] {
            if let Some(value) = value {
                *target = value;
            }
        }
        let limits = &mut self.limits;
        for (value, target) in [
            (file.max_connections, &mut limits.max_connections),
            (
                file.max_connections_per_address,
                &mut limits.max_connections_per_address,
            ),
        ] {
            if value.is_some() {
                *target = value;
            }
        }
        for (value, target) in [
            (
                file.negotiates_per_address_per_second,
                &mut limits.negotiates_per_address_per_second,
            ),
            (
                file.connects_per_address_per_second,
                &mut limits.connects_per_address_per_second,
            ),
        ] {
            if value.is_some() {
                *target = value;
            }
        }
        secs(file.handshake_timeout_secs, &mut self.handshake_timeout);
        secs(file.server_keep_alive_secs, &mut self.server_keep_alive_interval);
        secs(file.server_timeout_secs, &mut self.server_timeout);
        secs(file.node_timeout_secs, &mut self.node_timeout);
        secs(file.request_header_timeout_secs, &mut self.request_header_timeout);
        for (value, target) in [
            (file.redis, &mut self.redis),
            (file.node_id, &mut self.node_id),
            (file.advertise, &mut self.advertise),
            (file.tls_cert, &mut self.tls_cert),
            (file.tls_key, &mut self.tls_key),
        ] {
            if value.is_some() {
                *target = value;
            }
        }
        if let Some(prefix) = file.cluster_prefix {
            self.cluster_prefix = prefix;
        }
        if let Some(redirect) = file.redirect_clients {
            self.redirect_clients = redirect;
        }
        Ok(())
    }

    /// Parses settings from a TOML document over the defaults, and validates them.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let mut config = Config::default();
        config.merge_toml(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the command line (`args` without the program name) and the environment
    /// (`env` looks a variable up), reading the `--config` file if one is named.
    pub fn from_args<I, S>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Command, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut config_file = None;
        let mut listen = None;
        let mut keys = Vec::new();
        let (mut redis, mut node_id, mut advertise) = (None, None, None);
        let (mut tls_cert, mut tls_key) = (None, None);
        let mut stop_when_stdin_closes = false;
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<String, Error> {
                match inline.clone().or_else(|| args.next()) {
                    Some(value) => Ok(value),
                    None => Err(Error::config(format!("{name} needs a value ({what})"))),
                }
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "-V" | "--version" => return Ok(Command::Version),
                "--config" => config_file = Some(value("a file")?),
                "--listen" => listen = Some(value("an address")?),
                "--access-key" => keys.push(value("a key")?),
                "--redis" => redis = Some(value("a Redis URL")?),
                "--node-id" => node_id = Some(value("an id")?),
                "--advertise" => advertise = Some(value("a URL")?),
                "--tls-cert" => tls_cert = Some(value("a file")?),
                "--tls-key" => tls_key = Some(value("a file")?),
                "--stop-when-stdin-closes" if inline.is_none() => stop_when_stdin_closes = true,
                _ => return Err(Error::config(format!("unknown argument '{name}' (see --help)"))),
            }
        }
        let mut config = Config::default();
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::config(format!("cannot read config file '{path}': {e}")))?;
            config.merge_toml(&text)?;
        }
        if let Some(addr) = env("SWITCHBOARD_LISTEN").filter(|v| !v.trim().is_empty()) {
            config.listen = addr.trim().to_owned();
        }
        if let Some(list) = env("SWITCHBOARD_ACCESS_KEYS").filter(|v| !v.trim().is_empty()) {
            config.access_keys = list.split(',').map(|k| k.trim().to_owned()).collect();
        }
        for (name, target) in [
            ("SWITCHBOARD_REDIS", &mut config.redis),
            ("SWITCHBOARD_NODE_ID", &mut config.node_id),
            ("SWITCHBOARD_ADVERTISE", &mut config.advertise),
            ("SWITCHBOARD_TLS_CERT", &mut config.tls_cert),
            ("SWITCHBOARD_TLS_KEY", &mut config.tls_key),
        ] {
            if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
                *target = Some(value.trim().to_owned());
            }
        }
        if let Some(addr) = listen {
            config.listen = addr;
        }
        for (value, target) in [
            (redis, &mut config.redis),
            (node_id, &mut config.node_id),
            (advertise, &mut config.advertise),
            (tls_cert, &mut config.tls_cert),
            (tls_key, &mut config.tls_key),
        ] {
            if value.is_some() {
                *target = value;
            }
        }
        if !keys.is_empty() {
            config.access_keys = keys;
        }
        config.validate()?;
        Ok(Command::Run {
            config,
            stop_when_stdin_closes,
        })
    }

    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.access_keys.is_empty() {
            return Err(Error::config(
                "no access key: give one with --access-key, SWITCHBOARD_ACCESS_KEYS or access_keys",
            ));
        }
        if self.access_keys.iter().any(|k| k.is_empty()) {
            return Err(Error::config("an access key is empty"));
        }
        let limits = [
            ("max_connections", self.limits.max_connections),
            ("max_connections_per_address", self.limits.max_connections_per_address),
            (
                "negotiates_per_address_per_second",
                self.limits.negotiates_per_address_per_second.map(|n| n as usize),
            ),
            (
                "connects_per_address_per_second",
                self.limits.connects_per_address_per_second.map(|n| n as usize),
            ),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, limit)| *limit == Some(0)) {
            return Err(Error::config(format!("{name} must be at least 1")));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::config(
                "TLS needs both a certificate (tls_cert) and its key (tls_key)",
            ));
        }
        if self.listen.trim().is_empty() {
            return Err(Error::config("the listen address is empty"));
        }
        if self.clients_per_server_connection == 0 {
            return Err(Error::config("clients_per_server_connection must be at least 1"));
        }
        if self.max_clients_per_hub == Some(0) {
            return Err(Error::config("max_clients_per_hub must be at least 1"));
        }
        let sizes = [
            ("max_message_size", self.max_message_size),
            ("max_server_message_size", self.max_server_message_size),
            ("max_client_queued_bytes", self.max_client_queued_bytes),
            ("max_client_queued_messages", self.max_client_queued_messages),
            ("max_server_queued_bytes", self.max_server_queued_bytes),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(Error::config(format!("{name} must be at least 1")));
        }
        let durations = [
            ("handshake_timeout_secs", self.handshake_timeout),
            ("server_keep_alive_secs", self.server_keep_alive_interval),
            ("server_timeout_secs", self.server_timeout),
            ("request_header_timeout_secs", self.request_header_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::config(format!("{name} must be at least 1")));
        }
        if self.redis.as_deref().is_some_and(|url| url.trim().is_empty()) {
            return Err(Error::config("the Redis URL is empty"));
        }
        if let Some(id) = &self.node_id {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
                return Err(Error::config(
                    "node_id must be 1 to 64 letters, digits, '.', '_' or '-'",
                ));
            }
        }
        if let Some(url) = &self.advertise
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::config("advertise must be an http:// or https:// URL"));
        }
        if self.node_timeout.is_zero() {
            return Err(Error::config("node_timeout_secs must be at least 1"));
        }
        if self.cluster_prefix.is_empty() {
            return Err(Error::config("cluster_prefix is empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn run(command: Command) -> (Config, bool) {
        match command {
            Command::Run {
                config,
                stop_when_stdin_closes,
            } => (config, stop_when_stdin_closes),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn config_defaults_and_command_line() {
        let (config, stop) = run(Config::from_args(
            ["--listen", "127.0.0.1:0", "--access-key", "k1", "--access-key=k2"],
            no_env,
        )
        .unwrap());
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.access_keys, ["k1", "k2"]);
        assert!(!stop);
        assert_eq!(config.max_message_size, 1 << 20);
        assert_eq!(config.server_keep_alive_interval, Duration::from_secs(5));
        let (_, stop) = run(Config::from_args(["--access-key", "k", "--stop-when-stdin-closes"], no_env).unwrap());
        assert!(stop);
    }

    #[test]
    fn config_environment_is_below_command_line() {
        let env = |name: &str| match name {
            "SWITCHBOARD_LISTEN" => Some("0.0.0.0:9000".to_owned()),
            "SWITCHBOARD_ACCESS_KEYS" => Some("a, b,c".to_owned()),
            _ => None,
        };
        let (config, _) = run(Config::from_args(Vec::<String>::new(), env).unwrap());
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.access_keys, ["a", "b", "c"]);
        let (config, _) = run(Config::from_args(["--listen", "127.0.0.1:1", "--access-key", "z"], env).unwrap());
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.access_keys, ["z"]);
    }

    #[test]
    fn config_toml_file() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:8081"
            access_keys = ["one", "two"]
            max_clients_per_hub = 3
            max_message_size = 4096
            max_server_message_size = 8192
            handshake_timeout_secs = 2
            server_keep_alive_secs = 1
            server_timeout_secs = 7
            "#,
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:8081");
        assert_eq!(config.access_keys, ["one", "two"]);
        assert_eq!(config.max_clients_per_hub, Some(3));
        assert_eq!(config.max_message_size, 4096);
        assert_eq!(config.max_server_message_size, 8192);
        assert_eq!(config.handshake_timeout, Duration::from_secs(2));
        assert_eq!(config.server_keep_alive_interval, Duration::from_secs(1));
        assert_eq!(config.server_timeout, Duration::from_secs(7));
    }

    #[test]
    fn config_file_from_args_is_overridden_by_flags() {
        let path = std::env::temp_dir().join(format!("switchboard-service-test-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:7\"\naccess_keys = [\"file\"]\n").unwrap();
        let path_arg = path.to_string_lossy().into_owned();
        let (config, _) = run(Config::from_args(["--config", path_arg.as_str()], no_env).unwrap());
        assert_eq!(
            (config.listen.as_str(), config.access_keys[0].as_str()),
            ("127.0.0.1:7", "file")
        );
        let (config, _) =
            run(Config::from_args(["--config", path_arg.as_str(), "--access-key", "cli"], no_env).unwrap());
        assert_eq!(
            (config.listen.as_str(), config.access_keys[0].as_str()),
            ("127.0.0.1:7", "cli")
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn config_errors_are_reported() {
        let message = |args: &[&str]| Config::from_args(args.iter().copied(), no_env).unwrap_err().to_string();
        assert!(message(&[]).contains("no access key"));
        assert!(message(&["--bogus"]).contains("unknown argument '--bogus'"));
        assert!(message(&["--listen"]).contains("--listen needs a value"));
        assert!(message(&["--access-key", ""]).contains("empty"));
        assert!(message(&["--config", "/nonexistent/switchboard.toml"]).contains("cannot read config file"));
        let unknown = Config::from_toml("access_keys = [\"k\"]\nlisten_on = \"x\"").unwrap_err();
        assert!(unknown.to_string().contains("listen_on"), "{unknown}");
        assert!(Config::from_toml("access_keys = [\"k\"]\nmax_clients_per_hub = 0").is_err());
        assert!(Config::from_toml("access_keys = [\"k\"]\nserver_timeout_secs = 0").is_err());
    }

    #[test]
    fn config_help_documents_every_setting() {
        assert_eq!(Config::from_args(["--help"], no_env).unwrap(), Command::Help);
        assert_eq!(Config::from_args(["-h"], no_env).unwrap(), Command::Help);
        assert_eq!(Config::from_args(["-V"], no_env).unwrap(), Command::Version);
        for setting in [
            "--config",
            "--listen",
            "--access-key",
            "--stop-when-stdin-closes",
            "SWITCHBOARD_LISTEN",
            "SWITCHBOARD_ACCESS_KEYS",
            "listen =",
            "access_keys =",
            "max_clients_per_hub",
            "max_message_size",
            "max_server_message_size",
            "max_client_queued_bytes",
            "max_client_queued_messages",
            "max_server_queued_bytes",
            "handshake_timeout_secs",
            "server_keep_alive_secs",
            "server_timeout_secs",
            "request_header_timeout_secs",
            "--redis",
            "--node-id",
            "--advertise",
            "SWITCHBOARD_REDIS",
            "SWITCHBOARD_NODE_ID",
            "SWITCHBOARD_ADVERTISE",
            "redis =",
            "node_id =",
            "advertise =",
            "--tls-cert",
            "--tls-key",
            "SWITCHBOARD_TLS_CERT",
            "SWITCHBOARD_TLS_KEY",
            "tls_cert =",
            "tls_key =",
            "max_connections =",
            "max_connections_per_address",
            "negotiates_per_address_per_second",
            "connects_per_address_per_second",
            "node_timeout_secs",
            "cluster_prefix",
            "redirect_clients",
            "Now listening on: http://",
        ] {
            assert!(HELP.contains(setting), "--help does not mention {setting}");
        }
    }

    #[test]
    fn config_cluster_settings() {
        let env = |name: &str| (name == "SWITCHBOARD_REDIS").then(|| "redis://from-env/".to_owned());
        let (config, _) = run(Config::from_args(["--access-key", "k", "--node-id", "n1"], env).unwrap());
        assert_eq!(config.redis.as_deref(), Some("redis://from-env/"));
        assert_eq!(config.node_id.as_deref(), Some("n1"));
        let (config, _) = run(Config::from_args(
            [
                "--access-key",
                "k",
                "--redis",
                "redis://cli/",
                "--advertise",
                "http://10.0.0.1:80",
            ],
            env,
        )
        .unwrap());
        assert_eq!(config.redis.as_deref(), Some("redis://cli/"));
        assert_eq!(config.advertise.as_deref(), Some("http://10.0.0.1:80"));
        let config = Config::from_toml(
            "access_keys = [\"k\"]\nredis = \"redis://r/\"\nnode_timeout_secs = 3\ncluster_prefix = \"c2\"\nredirect_clients = false",
        )
        .unwrap();
        assert_eq!(
            (
                config.node_timeout,
                config.cluster_prefix.as_str(),
                config.redirect_clients
            ),
            (Duration::from_secs(3), "c2", false)
        );
        let message = |args: &[&str]| Config::from_args(args.iter().copied(), no_env).unwrap_err().to_string();
        assert!(message(&["--access-key", "k", "--node-id", "a b"]).contains("node_id"));
        assert!(message(&["--access-key", "k", "--advertise", "10.0.0.1:80"]).contains("advertise"));
        assert!(message(&["--access-key", "k", "--redis", " "]).contains("Redis URL"));
    }

    #[test]
    fn config_debug_hides_keys() {
        let mut config = Config::new("very-secret-key");
        config.redis = Some("redis://user:redis-password@host/".to_owned());
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret-key"), "{text}");
        assert!(!text.contains("redis-password"), "{text}");
        assert!(text.contains("redacted"));
    }
}
