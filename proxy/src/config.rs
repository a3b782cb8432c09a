//! Typed configuration: command-line flags, `SWITCHBOARD_*` environment
//! variables and an optional TOML file, in that order of precedence, over
//! documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::tls::TlsFiles;

/// Request headers passed to app servers by default.
pub const DEFAULT_FORWARD_HEADERS: [&str; 4] =
    ["user-agent", "origin", "x-forwarded-for", "accept-language"];
/// Client port (negotiate, WebSockets).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// App-server gRPC port. Never expose it publicly.
pub const DEFAULT_UPSTREAM_LISTEN: &str = "0.0.0.0:7070";
/// Admin port (health, readiness).
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9090";
/// Time a client has to send its handshake after the transport opened.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// A ping is sent after this long without sending anything.
pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// A client that sends nothing for this long is closed (after its first message).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a negotiated connection id stays valid before the client connects.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for clients to receive their Close message.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// On shutdown, clients are told to reconnect spread evenly over this window,
/// so they do not all land on the other replicas at once.
pub const DEFAULT_DRAIN_WINDOW: Duration = Duration::from_secs(3);
/// Largest single message a client may send, in bytes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024;
/// Bound on bytes queued for one client; past it the client is closed as a slow consumer.
pub const DEFAULT_OUTBOX_LIMIT: usize = 1024 * 1024;
/// A long poll with nothing to deliver is answered empty after this long.
pub const DEFAULT_LONG_POLL_TIMEOUT: Duration = Duration::from_secs(90);
/// A long-polling client that sends no new poll for this long is disconnected.
pub const DEFAULT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Stateful reconnect is offered to clients that ask for it.
pub const DEFAULT_STATEFUL_RECONNECT: bool = true;
/// Unacknowledged bytes kept per stateful-reconnect connection.
pub const DEFAULT_STATEFUL_RECONNECT_BUFFER: usize = 100_000;
/// Transports offered to clients.
pub const DEFAULT_TRANSPORTS: &str = "websockets,sse,longpolling";
/// The bus between replicas: `local` means a standalone node.
pub const DEFAULT_BUS: &str = "local";
/// Cluster name: reported to app servers with a Redis bus, and the prefix of
/// every Redis key and channel, so clusters sharing one Redis stay apart.
pub const DEFAULT_CLUSTER_NAME: &str = "switchboard";
/// How long a node waits for another node to answer a group change, close or
/// query about a connection it holds.
pub const DEFAULT_BUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often TLS certificate, key and CA files are checked for changes.
pub const DEFAULT_TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// Command-line flags and environment variables. Every field is optional so a
/// config file can supply it; defaults are applied in [`Config::load`].
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: an edge connection proxy for SignalR clients"
)]
pub struct Args {
    /// TOML file with any of the settings below (snake_case keys). Flags and
    /// environment variables override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Client address: negotiate and WebSockets. [default: 0.0.0.0:8080]
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// App-server gRPC address; keep it private. [default: 0.0.0.0:7070]
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_LISTEN")]
    pub upstream_listen: Option<SocketAddr>,
    /// Admin address: /healthz and /readyz. [default: 0.0.0.0:9090]
    #[arg(long, env = "SWITCHBOARD_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Access key(s) that sign client and app-server tokens. Repeat the flag or
    /// separate with commas to accept several during a rotation. Required.
    #[arg(
        long = "access-key",
        env = "SWITCHBOARD_ACCESS_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub access_keys: Vec<String>,
    /// URL clients use to reach this proxy; tokens' audiences are checked
    /// against it. [default: http://<listen>]
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Origins allowed to call negotiate from a browser, comma-separated; `*`
    /// allows any. [default: *]
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Request headers of a client's connect request passed to the app
    /// server in ConnectionOpened, comma-separated (never `authorization`).
    /// [default: user-agent,origin,x-forwarded-for,accept-language]
    #[arg(long, env = "SWITCHBOARD_FORWARD_HEADERS", value_delimiter = ',')]
    pub forward_headers: Vec<String>,
    /// Handshake timeout, e.g. `15s`, `500ms`. [default: 15s]
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_TIMEOUT", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Send a ping after this long without sending. [default: 15s]
    #[arg(long, env = "SWITCHBOARD_KEEP_ALIVE_INTERVAL", value_parser = parse_duration)]
    pub keep_alive_interval: Option<Duration>,
    /// Close a client silent for this long. [default: 30s]
    #[arg(long, env = "SWITCHBOARD_CLIENT_TIMEOUT", value_parser = parse_duration)]
    pub client_timeout: Option<Duration>,
    /// How long a negotiated connection waits for its transport. [default: 15s]
    #[arg(long, env = "SWITCHBOARD_CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// How long shutdown waits for clients to receive Close. [default: 5s]
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// On shutdown, spread clients' Close{allowReconnect} over this window;
    /// must be shorter than the shutdown timeout. [default: 3s]
    #[arg(long, env = "SWITCHBOARD_DRAIN_WINDOW", value_parser = parse_duration)]
    pub drain_window: Option<Duration>,
    /// Largest message a client may send, in bytes. [default: 32768]
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Bytes that may queue for one client before it is closed as a slow
    /// consumer. [default: 1048576]
    #[arg(long, env = "SWITCHBOARD_OUTBOX_LIMIT")]
    pub outbox_limit: Option<usize>,
    /// Log format: `text` or `json`. [default: text]
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Answer an idle long poll empty after this long. [default: 90s]
    #[arg(long, env = "SWITCHBOARD_LONG_POLL_TIMEOUT", value_parser = parse_duration)]
    pub long_poll_timeout: Option<Duration>,
    /// Disconnect a long-polling client that has not polled again within
    /// this long, and a stateful-reconnect WebSocket client that has not
    /// reconnected within this long after its socket dropped. [default: 15s]
    #[arg(long, env = "SWITCHBOARD_DISCONNECT_TIMEOUT", value_parser = parse_duration)]
    pub disconnect_timeout: Option<Duration>,
    /// Offer stateful reconnect (WebSockets) to clients that ask for it:
    /// `true` or `false`. [default: true]
    #[arg(long, env = "SWITCHBOARD_STATEFUL_RECONNECT", action = clap::ArgAction::Set)]
    pub stateful_reconnect: Option<bool>,
    /// Bytes sent to a stateful-reconnect client and kept until it
    /// acknowledges them. At the bound the proxy stops writing to that client
    /// until an Ack arrives; what waits meanwhile counts against
    /// --outbox-limit. [default: 100000]
    #[arg(long, env = "SWITCHBOARD_STATEFUL_RECONNECT_BUFFER")]
    pub stateful_reconnect_buffer: Option<usize>,
    /// Transports offered, comma-separated from `websockets`, `sse`,
    /// `longpolling`. [default: websockets,sse,longpolling]
    #[arg(long, env = "SWITCHBOARD_TRANSPORTS", value_parser = Transports::parse)]
    pub transports: Option<Transports>,
    /// Transports for one hub, overriding --transports: `HUB=LIST`, e.g.
    /// `chat=websockets,longpolling`. Repeat for several hubs.
    #[arg(long = "hub-transports", env = "SWITCHBOARD_HUB_TRANSPORTS", value_delimiter = ';', value_parser = parse_hub_transports)]
    pub hub_transports: Vec<(String, Transports)>,
    /// How replicas reach each other: `local` (a standalone node),
    /// `redis://host:port[/db]` (replicas sharing that Redis act as one
    /// service) or `redis+cluster://host:port,host:port` (a Redis Cluster,
    /// by some of its nodes; sharded pub/sub). [default: local]
    #[arg(long, env = "SWITCHBOARD_BUS", value_parser = BusKind::parse)]
    pub bus: Option<BusKind>,
    /// Name of the cluster this node belongs to, with a Redis bus: reported
    /// to app servers and used as the prefix of Redis keys and channels.
    /// Letters, digits, `-`, `_` and `.`. [default: switchboard]
    #[arg(long, env = "SWITCHBOARD_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// How long to wait for another node to answer a group change, close or
    /// query about one of its connections. [default: 5s]
    #[arg(long, env = "SWITCHBOARD_BUS_TIMEOUT", value_parser = parse_duration)]
    pub bus_timeout: Option<Duration>,
    /// PEM certificate chain (leaf first) served on the client port; with
    /// --tls-key, clients connect over https/wss. [default: none, plain HTTP]
    #[arg(long, env = "SWITCHBOARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SWITCHBOARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate chain served on the upstream port; with
    /// --upstream-tls-key, app servers link over https. [default: none]
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_TLS_CERT")]
    pub upstream_tls_cert: Option<PathBuf>,
    /// PEM private key of --upstream-tls-cert.
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_TLS_KEY")]
    pub upstream_tls_key: Option<PathBuf>,
    /// PEM CA bundle: app servers must present a client certificate signed
    /// by one of these CAs (mutual TLS). Needs --upstream-tls-cert.
    /// [default: none, no client certificate asked]
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_CLIENT_CA")]
    pub upstream_client_ca: Option<PathBuf>,
    /// How often the TLS files are checked for changes; a changed
    /// certificate is served to new connections. [default: 30s]
    #[arg(long, env = "SWITCHBOARD_TLS_RELOAD_INTERVAL", value_parser = parse_duration)]
    pub tls_reload_interval: Option<Duration>,
}

/// The file form of [`Args`]: the same settings, snake_case keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    upstream_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    access_keys: Option<Vec<String>>,
    public_url: Option<String>,
    allowed_origins: Option<Vec<String>>,
    forward_headers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_duration")]
    handshake_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    keep_alive_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    client_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    shutdown_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    drain_window: Option<Duration>,
    max_message_size: Option<usize>,
    outbox_limit: Option<usize>,
    log_format: Option<LogFormat>,
    #[serde(default, deserialize_with = "de_duration")]
    long_poll_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    disconnect_timeout: Option<Duration>,
    stateful_reconnect: Option<bool>,
    stateful_reconnect_buffer: Option<usize>,
    #[serde(default, deserialize_with = "de_transports")]
    transports: Option<Transports>,
    /// Hub name → transport list, e.g. `[hub_transports] chat = "websockets"`.
    hub_transports: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "de_bus")]
    bus: Option<BusKind>,
    cluster_name: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    bus_timeout: Option<Duration>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    upstream_tls_cert: Option<PathBuf>,
    upstream_tls_key: Option<PathBuf>,
    upstream_client_ca: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    tls_reload_interval: Option<Duration>,
}

/// Which bus connects this node to its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BusKind {
    /// A standalone node: sends reach only its own clients.
    #[default]
    Local,
    /// Replicas sharing this Redis (a `redis://` URL) act as one service.
    Redis(String),
    /// Replicas sharing this Redis Cluster (a `redis+cluster://` URL naming
    /// one or more of its nodes) act as one service.
    RedisCluster(String),
}

impl BusKind {
    /// Parses `local`, `redis://[user:password@]host[:port][/db]` or
    /// `redis+cluster://[user:password@]host:port[,host:port...]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Ok(Self::Local);
        }
        if s.starts_with(CLUSTER_SCHEME) {
            let cluster = Self::RedisCluster(s.to_owned());
            if cluster.redis_urls().is_empty() {
                return Err(format!("bus URL '{}' names no Redis node", redacted(s)));
            }
            for seed in cluster.redis_urls() {
                redis::Client::open(seed.as_str())
                    .map_err(|e| format!("bus URL '{}' is not valid: {e}", redacted(s)))?;
            }
            return Ok(cluster);
        }
        if s.starts_with("rediss://") || s.starts_with("rediss+cluster://") {
            return Err(format!(
                "'{}': TLS to Redis (rediss://) is not supported by this build; use redis:// on a private network",
                redacted(s)
            ));
        }
        if !s.starts_with("redis://") {
            return Err(format!(
                "unknown bus '{}': use `local`, a redis://host:port[/db] URL or redis+cluster://host:port,host:port",
                redacted(s)
            ));
        }
        redis::Client::open(s)
            .map_err(|e| format!("bus URL '{}' is not valid: {e}", redacted(s)))?;
        Ok(Self::Redis(s.to_owned()))
    }

    /// The bus for logs and error texts, without any password.
    pub fn describe(&self) -> String {
        match self {
            Self::Local => "local".into(),
            Self::Redis(url) | Self::RedisCluster(url) => redacted(url),
        }
    }

    /// The `redis://` URL of each node named (one for a single Redis).
    pub fn redis_urls(&self) -> Vec<String> {
        match self {
            Self::Local => Vec::new(),
            Self::Redis(url) => vec![url.clone()],
            Self::RedisCluster(url) => {
                let rest = &url[CLUSTER_SCHEME.len()..];
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|host| format!("redis://{auth}{host}"))
                    .collect()
            }
        }
    }
}

const CLUSTER_SCHEME: &str = "redis+cluster://";

/// `url` with the password (if any) replaced by `***`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

fn de_bus<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<BusKind>, D::Error> {
    let s = String::deserialize(d)?;
    BusKind::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A set of client transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports(u8);

/// One client transport, named as in negotiate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSockets,
    ServerSentEvents,
    LongPolling,
}

impl Transport {
    /// The name clients and negotiate answers use.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSockets => "WebSockets",
            Self::ServerSentEvents => "ServerSentEvents",
            Self::LongPolling => "LongPolling",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::WebSockets => 1,
            Self::ServerSentEvents => 2,
            Self::LongPolling => 4,
        }
    }
}

impl Transports {
    /// Every transport.
    pub const ALL: Transports = Transports(7);

    /// Parses a comma-separated list of `websockets`, `sse` (or
    /// `serversentevents`), `longpolling` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = 0;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let t = match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
                "websockets" | "websocket" | "ws" => Transport::WebSockets,
                "sse" | "serversentevents" => Transport::ServerSentEvents,
                "longpolling" | "lp" => Transport::LongPolling,
                _ => {
                    return Err(format!(
                        "unknown transport '{name}': use websockets, sse or longpolling"
                    ));
                }
            };
            set |= t.bit();
        }
        if set == 0 {
            return Err(format!(
                "'{s}' names no transport: list at least one of websockets, sse, longpolling"
            ));
        }
        Ok(Self(set))
    }

    pub fn contains(self, t: Transport) -> bool {
        self.0 & t.bit() != 0
    }

    /// The enabled transports in negotiate order.
    pub fn iter(self) -> impl Iterator<Item = Transport> {
        [
            Transport::WebSockets,
            Transport::ServerSentEvents,
            Transport::LongPolling,
        ]
        .into_iter()
        .filter(move |t| self.contains(*t))
    }
}

/// Parses `HUB=LIST` for `--hub-transports`.
fn parse_hub_transports(s: &str) -> Result<(String, Transports), String> {
    let (hub, list) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not HUB=TRANSPORTS, e.g. chat=websockets,longpolling"))?;
    let hub = hub.trim();
    if hub.is_empty() {
        return Err(format!("'{s}' names no hub"));
    }
    Ok((hub.to_ascii_lowercase(), Transports::parse(list)?))
}

fn de_transports<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Transports>, D::Error> {
    let s = String::deserialize(d)?;
    Transports::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which browser origins may call the client endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin.
    Any,
    /// Exactly these origins (scheme://host[:port], compared case-insensitively).
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Whether `origin` may make cross-origin requests.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstream_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub access_keys: Vec<String>,
    /// Without a trailing slash.
    pub public_url: String,
    pub allowed_origins: AllowedOrigins,
    /// Lower-case header names passed to app servers.
    pub forward_headers: Vec<String>,
    pub handshake_timeout: Duration,
    pub keep_alive_interval: Duration,
    pub client_timeout: Duration,
    pub connect_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub drain_window: Duration,
    pub max_message_size: usize,
    pub outbox_limit: usize,
    pub log_format: LogFormat,
    pub long_poll_timeout: Duration,
    pub disconnect_timeout: Duration,
    /// Offer stateful reconnect to WebSocket clients that ask for it.
    pub stateful_reconnect: bool,
    /// Unacknowledged bytes kept per stateful-reconnect connection.
    pub stateful_reconnect_buffer: usize,
    /// Transports offered for hubs without an override.
    pub transports: Transports,
    /// Per-hub overrides, lower-case hub names.
    pub hub_transports: Vec<(String, Transports)>,
    /// The bus between replicas.
    pub bus: BusKind,
    /// Cluster name: Redis key and channel prefix, reported with a Redis bus.
    pub cluster_name: String,
    /// Wait for another node's answer to a directed request.
    pub bus_timeout: Duration,
    /// Client-port certificate and key; `None` serves plain HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Upstream-port certificate and key; `None` serves plain HTTP/2.
    pub upstream_tls_cert: Option<PathBuf>,
    pub upstream_tls_key: Option<PathBuf>,
    /// CA bundle app-server client certificates must chain to (mutual TLS).
    pub upstream_client_ca: Option<PathBuf>,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
}

/// A configuration problem, phrased as what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags and environment over the optional file over defaults,
    /// then validates.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let addr = |s: &str| s.parse::<SocketAddr>().expect("default address parses");
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| addr(DEFAULT_LISTEN));
        let access_keys = non_empty(args.access_keys)
            .or(file.access_keys)
            .unwrap_or_default();
        let origins = non_empty(args.allowed_origins)
            .or(file.allowed_origins)
            .unwrap_or_default();
        let forward_headers = non_empty(args.forward_headers)
            .or(file.forward_headers)
            .unwrap_or_else(|| {
                DEFAULT_FORWARD_HEADERS
                    .iter()
                    .map(|h| (*h).to_owned())
                    .collect()
            });
        let tls_cert = args.tls_cert.or(file.tls_cert);
        let scheme = if tls_cert.is_some() { "https" } else { "http" };
        let public_url = args
            .public_url
            .or(file.public_url)
            .unwrap_or_else(|| format!("{scheme}://{listen}"));
        let hub_transports = if args.hub_transports.is_empty() {
            let mut list = Vec::new();
            for (hub, transports) in file.hub_transports.unwrap_or_default() {
                list.push(
                    parse_hub_transports(&format!("{hub}={transports}"))
                        .map_err(ConfigError::Invalid)?,
                );
            }
            list
        } else {
            args.hub_transports
        };
        let config = Config {
            listen,
            upstream_listen: args
                .upstream_listen
                .or(file.upstream_listen)
                .unwrap_or_else(|| addr(DEFAULT_UPSTREAM_LISTEN)),
            admin_listen: args
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| addr(DEFAULT_ADMIN_LISTEN)),
            access_keys: access_keys
                .into_iter()
                .map(|k| k.trim().to_owned())
                .collect(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            allowed_origins: if origins.is_empty() || origins.iter().any(|o| o.trim() == "*") {
                AllowedOrigins::Any
            } else {
                AllowedOrigins::List(origins.into_iter().map(|o| o.trim().to_owned()).collect())
            },
            forward_headers: forward_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            handshake_timeout: args
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            keep_alive_interval: args
                .keep_alive_interval
                .or(file.keep_alive_interval)
                .unwrap_or(DEFAULT_KEEP_ALIVE_INTERVAL),
            client_timeout: args
                .client_timeout
                .or(file.client_timeout)
                .unwrap_or(DEFAULT_CLIENT_TIMEOUT),
            connect_timeout: args
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            shutdown_timeout: args
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            drain_window: args
                .drain_window
                .or(file.drain_window)
                .unwrap_or(DEFAULT_DRAIN_WINDOW),
            max_message_size: args
                .max_message_size
                .or(file.max_message_size)
                .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
            outbox_limit: args
                .outbox_limit
                .or(file.outbox_limit)
                .unwrap_or(DEFAULT_OUTBOX_LIMIT),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            long_poll_timeout: args
                .long_poll_timeout
                .or(file.long_poll_timeout)
                .unwrap_or(DEFAULT_LONG_POLL_TIMEOUT),
            disconnect_timeout: args
                .disconnect_timeout
                .or(file.disconnect_timeout)
                .unwrap_or(DEFAULT_DISCONNECT_TIMEOUT),
            stateful_reconnect: args
                .stateful_reconnect
                .or(file.stateful_reconnect)
                .unwrap_or(DEFAULT_STATEFUL_RECONNECT),
            stateful_reconnect_buffer: args
                .stateful_reconnect_buffer
                .or(file.stateful_reconnect_buffer)
                .unwrap_or(DEFAULT_STATEFUL_RECONNECT_BUFFER),
            transports: args
                .transports
                .or(file.transports)
                .unwrap_or(Transports::ALL),
            hub_transports,
            bus: args.bus.or(file.bus).unwrap_or_default(),
            cluster_name: args
                .cluster_name
                .or(file.cluster_name)
                .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned()),
            bus_timeout: args
                .bus_timeout
                .or(file.bus_timeout)
                .unwrap_or(DEFAULT_BUS_TIMEOUT),
            tls_cert,
            tls_key: args.tls_key.or(file.tls_key),
            upstream_tls_cert: args.upstream_tls_cert.or(file.upstream_tls_cert),
            upstream_tls_key: args.upstream_tls_key.or(file.upstream_tls_key),
            upstream_client_ca: args.upstream_client_ca.or(file.upstream_client_ca),
            tls_reload_interval: args
                .tls_reload_interval
                .or(file.tls_reload_interval)
                .unwrap_or(DEFAULT_TLS_RELOAD_INTERVAL),
        };
        config.validate()?;
        Ok(config)
    }

    /// A configuration for tests and embedding: loopback, ephemeral ports,
    /// one access key, defaults elsewhere.
    pub fn for_tests(access_key: &str) -> Self {
        let any = "127.0.0.1:0".parse().expect("loopback parses");
        Config {
            listen: any,
            upstream_listen: any,
            admin_listen: any,
            access_keys: vec![access_key.to_owned()],
            public_url: String::new(),
            allowed_origins: AllowedOrigins::Any,
            forward_headers: DEFAULT_FORWARD_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            keep_alive_interval: DEFAULT_KEEP_ALIVE_INTERVAL,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            shutdown_timeout: Duration::from_millis(200),
            drain_window: Duration::ZERO,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            outbox_limit: DEFAULT_OUTBOX_LIMIT,
            log_format: LogFormat::Text,
            long_poll_timeout: DEFAULT_LONG_POLL_TIMEOUT,
            disconnect_timeout: DEFAULT_DISCONNECT_TIMEOUT,
            stateful_reconnect: DEFAULT_STATEFUL_RECONNECT,
            stateful_reconnect_buffer: DEFAULT_STATEFUL_RECONNECT_BUFFER,
            transports: Transports::ALL,
            hub_transports: Vec::new(),
            bus: BusKind::Local,
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            bus_timeout: DEFAULT_BUS_TIMEOUT,
            tls_cert: None,
            tls_key: None,
            upstream_tls_cert: None,
            upstream_tls_key: None,
            upstream_client_ca: None,
            tls_reload_interval: DEFAULT_TLS_RELOAD_INTERVAL,
        }
    }

    /// The client port's TLS files, when it serves TLS.
    pub fn client_tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: None,
        })
    }

    /// The upstream port's TLS files, when it serves TLS.
    pub fn upstream_tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.upstream_tls_cert.clone()?,
            key: self.upstream_tls_key.clone()?,
            client_ca: self.upstream_client_ca.clone(),
        })
    }

    /// The transports offered for `hub` (lower-case).
    pub fn transports_for(&self, hub: &str) -> Transports {
        self.hub_transports
            .iter()
            .find(|(h, _)| h == hub)
            .map_or(self.transports, |(_, t)| *t)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(h) = self.forward_headers.iter().find(|h| {
            matches!(h.as_str(), "authorization" | "proxy-authorization")
                || http::HeaderName::from_bytes(h.as_bytes()).is_err()
        }) {
            return bad(format!(
                "--forward-headers cannot include '{h}': credentials are never passed to app servers, and names must be valid header names"
            ));
        }
        if self.drain_window >= self.shutdown_timeout {
            return bad(format!(
                "--drain-window ({:?}) must be shorter than --shutdown-timeout ({:?}), which also covers the clients' last writes",
                self.drain_window, self.shutdown_timeout
            ));
        }
        if self.access_keys.is_empty() {
            return bad("no access key: set --access-key or SWITCHBOARD_ACCESS_KEY (at least 32 characters is recommended)".into());
        }
        if let Some(k) = self.access_keys.iter().find(|k| k.len() < 16) {
            return bad(format!(
                "an access key of {} characters is too short to be safe: use at least 16 (32 or more recommended)",
                k.len()
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return bad(format!(
                "--public-url must start with http:// or https:// (got '{}')",
                self.public_url
            ));
        }
        if self.max_message_size < 1024 {
            return bad(format!(
                "--max-message-size must be at least 1024 bytes (got {})",
                self.max_message_size
            ));
        }
        if self.outbox_limit < self.max_message_size {
            return bad(format!(
                "--outbox-limit ({}) must be at least --max-message-size ({}) so one message always fits",
                self.outbox_limit, self.max_message_size
            ));
        }
        if self.keep_alive_interval.is_zero() || self.client_timeout <= self.keep_alive_interval {
            return bad(format!(
                "--client-timeout ({:?}) must be longer than --keep-alive-interval ({:?}), which must be non-zero; twice as long is usual",
                self.client_timeout, self.keep_alive_interval
            ));
        }
        if self.handshake_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("--handshake-timeout and --connect-timeout must be non-zero".into());
        }
        if self.long_poll_timeout.is_zero() || self.disconnect_timeout.is_zero() {
            return bad("--long-poll-timeout and --disconnect-timeout must be non-zero".into());
        }
        if self.stateful_reconnect && self.stateful_reconnect_buffer == 0 {
            return bad(
                "--stateful-reconnect-buffer must be non-zero (or turn stateful reconnect off with --stateful-reconnect false)"
                    .into(),
            );
        }
        let name = &self.cluster_name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(format!(
                "--cluster-name '{name}' must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if self.bus_timeout.is_zero() {
            return bad("--bus-timeout must be non-zero".into());
        }
        self.validate_tls()
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return bad(
                    "--tls-cert needs --tls-key (SWITCHBOARD_TLS_KEY): the private key of that certificate",
                );
            }
            (None, Some(_)) => {
                return bad(
                    "--tls-key needs --tls-cert (SWITCHBOARD_TLS_CERT): the certificate chain it belongs to",
                );
            }
            _ => {}
        }
        match (&self.upstream_tls_cert, &self.upstream_tls_key) {
            (Some(_), None) => {
                return bad(
                    "--upstream-tls-cert needs --upstream-tls-key (SWITCHBOARD_UPSTREAM_TLS_KEY): the private key of that certificate",
                );
            }
            (None, Some(_)) => {
                return bad(
                    "--upstream-tls-key needs --upstream-tls-cert (SWITCHBOARD_UPSTREAM_TLS_CERT): the certificate chain it belongs to",
                );
            }
            _ => {}
        }
        if self.upstream_client_ca.is_some() && self.upstream_tls_cert.is_none() {
            return bad(
                "--upstream-client-ca needs TLS on the upstream port: set --upstream-tls-cert and --upstream-tls-key too",
            );
        }
        if self.tls_reload_interval.is_zero() {
            return bad("--tls-reload-interval must be non-zero (e.g. 30s)");
        }
        Ok(())
    }
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

/// Parses `250ms`, `15s`, `2m`, `1h`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("'{s}' is not a duration: use a whole number with ms, s, m or h (e.g. 15s)")
    })?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!(
            "unknown duration unit '{other}' in '{s}': use ms, s, m or h"
        )),
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["switchboard"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn defaults_apply_and_public_url_follows_listen() {
        let c = Config::load(args(&[
            "--access-key",
            "0123456789abcdef0123",
            "--listen",
            "127.0.0.1:8081",
        ]))
        .unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8081");
        assert_eq!(c.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert_eq!(c.upstream_listen, DEFAULT_UPSTREAM_LISTEN.parse().unwrap());
        assert!(c.stateful_reconnect);
        assert_eq!(
            c.stateful_reconnect_buffer,
            DEFAULT_STATEFUL_RECONNECT_BUFFER
        );
    }

    #[test]
    fn stateful_reconnect_can_be_turned_off_and_sized() {
        let key = ["--access-key", "0123456789abcdef0123"];
        let c = Config::load(args(
            &[&key[..], &["--stateful-reconnect", "false"]].concat(),
        ))
        .unwrap();
        assert!(!c.stateful_reconnect);
        let c = Config::load(args(
            &[&key[..], &["--stateful-reconnect-buffer", "5000"]].concat(),
        ))
        .unwrap();
        assert_eq!(c.stateful_reconnect_buffer, 5000);
        let err = Config::load(args(
            &[&key[..], &["--stateful-reconnect-buffer", "0"]].concat(),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("--stateful-reconnect-buffer"), "{err}");
    }

    #[test]
    fn missing_key_says_what_to_set() {
        let err = Config::load(args(&[])).unwrap_err().to_string();
        assert!(err.contains("SWITCHBOARD_ACCESS_KEY"), "{err}");
    }

    #[test]
    fn file_supplies_and_flags_override() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::write(
            &dir,
            "access_keys = [\"0123456789abcdef0123\"]\nclient_timeout = \"40s\"\nmax_message_size = 4096\nallowed_origins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let c = Config::load(args(&[
            "--config",
            dir.to_str().unwrap(),
            "--max-message-size",
            "2048",
        ]))
        .unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(c.client_timeout, Duration::from_secs(40));
        assert_eq!(c.max_message_size, 2048);
        assert!(c.allowed_origins.allows("https://A.example"));
        assert!(!c.allowed_origins.allows("https://b.example"));
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let dir = std::env::temp_dir().join(format!("sb-config-bad-{}", std::process::id()));
        std::fs::write(&dir, "acess_keys = [\"x\"]\n").unwrap();
        let err = Config::load(args(&["--config", dir.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&dir).ok();
        assert!(err.contains("acess_keys"), "{err}");
    }

    #[test]
    fn transports_default_parse_and_override_per_hub() {
        let c = Config::load(args(&[
            "--access-key",
            "0123456789abcdef0123",
            "--transports",
            "websockets,sse",
            "--hub-transports",
            "Chat=longpolling",
        ]))
        .unwrap();
        assert!(!c.transports_for("other").contains(Transport::LongPolling));
        assert!(
            c.transports_for("other")
                .contains(Transport::ServerSentEvents)
        );
        let chat: Vec<_> = c.transports_for("chat").iter().collect();
        assert_eq!(chat, vec![Transport::LongPolling]);
        assert_eq!(c.long_poll_timeout, DEFAULT_LONG_POLL_TIMEOUT);
        assert!(Transports::parse("websockets,carrier-pigeon").is_err());
        assert!(Transports::parse(" , ").is_err());
        assert_eq!(Transports::parse(DEFAULT_TRANSPORTS), Ok(Transports::ALL));
    }

    #[test]
    fn hub_transports_from_file() {
        let dir = std::env::temp_dir().join(format!("sb-config-tr-{}", std::process::id()));
        std::fs::write(
            &dir,
            "access_keys = [\"0123456789abcdef0123\"]\ntransports = \"sse\"\nlong_poll_timeout = \"5s\"\n[hub_transports]\nchat = \"websockets,longpolling\"\n",
        )
        .unwrap();
        let c = Config::load(args(&["--config", dir.to_str().unwrap()])).unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(c.long_poll_timeout, Duration::from_secs(5));
        assert_eq!(c.transports_for("x").iter().count(), 1);
        assert!(c.transports_for("chat").contains(Transport::WebSockets));
        assert!(
            !c.transports_for("chat")
                .contains(Transport::ServerSentEvents)
        );
    }

    #[test]
    fn inconsistent_timeouts_are_rejected() {
        let err = Config::load(args(&[
            "--access-key",
            "0123456789abcdef0123",
            "--keep-alive-interval",
            "30s",
            "--client-timeout",
            "10s",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("--client-timeout"), "{err}");
    }

    #[test]
    fn drain_window_must_fit_in_the_shutdown_timeout() {
        let err = Config::load(args(&[
            "--access-key",
            "0123456789abcdef0123",
            "--drain-window",
            "10s",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("--drain-window"), "{err}");
    }

    #[test]
    fn forwarded_headers_never_include_credentials() {
        let c = Config::load(args(&[
            "--access-key",
            "0123456789abcdef0123",
            "--forward-headers",
            "Cookie, X-Trace",
        ]))
        .unwrap();
        assert_eq!(
            c.forward_headers,
            vec!["cookie".to_owned(), "x-trace".to_owned()]
        );
        let err = Config::load(args(&[
            "--access-key",
            "0123456789abcdef0123",
            "--forward-headers",
            "cookie,Authorization",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("authorization"), "{err}");
    }

    #[test]
    fn bus_defaults_to_local_and_accepts_redis_urls() {
        let key = "0123456789abcdef0123";
        let c = Config::load(args(&["--access-key", key])).unwrap();
        assert_eq!(
            (c.bus, c.cluster_name.as_str(), c.bus_timeout),
            (BusKind::Local, "switchboard", DEFAULT_BUS_TIMEOUT)
        );
        let c = Config::load(args(&[
            "--access-key",
            key,
            "--bus",
            "redis://127.0.0.1:6379/2",
            "--cluster-name",
            "eu-1",
        ]))
        .unwrap();
        assert_eq!(c.bus, BusKind::Redis("redis://127.0.0.1:6379/2".into()));
        assert_eq!(c.cluster_name, "eu-1");
        for (bus, says) in [
            ("nats://x", "use `local`, a redis://"),
            ("redis+cluster://a:1,b:x", "not valid"),
            ("rediss://x:6380", "TLS"),
        ] {
            let err = BusKind::parse(bus).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        let err = Config::load(args(&["--access-key", key, "--cluster-name", "a b"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--cluster-name"), "{err}");
        let file = std::env::temp_dir().join(format!("sb-bus-{}", std::process::id()));
        std::fs::write(
            &file,
            "access_keys = [\"0123456789abcdef0123\"]\nbus = \"redis://r:6379\"\ncluster_name = \"blue\"\nbus_timeout = \"2s\"\n",
        )
        .unwrap();
        let c = Config::load(args(&["--config", file.to_str().unwrap()])).unwrap();
        std::fs::remove_file(&file).ok();
        assert_eq!(
            (c.bus, c.cluster_name.as_str(), c.bus_timeout),
            (
                BusKind::Redis("redis://r:6379".into()),
                "blue",
                Duration::from_secs(2)
            )
        );
        assert_eq!(
            BusKind::Redis("redis://app:secret@h:1".into()).describe(),
            "redis://app:***@h:1"
        );
        let cluster = BusKind::parse("redis+cluster://app:secret@a:7000, b:7001").unwrap();
        assert_eq!(
            cluster.redis_urls(),
            ["redis://app:secret@a:7000", "redis://app:secret@b:7001"]
        );
        assert_eq!(cluster.describe(), "redis+cluster://app:***@a:7000, b:7001");
    }

    #[test]
    fn tls_settings_come_in_pairs_and_switch_the_public_url_to_https() {
        let key = ["--access-key", "0123456789abcdef0123"];
        let load = |extra: &[&str]| Config::load(args(&[&key[..], extra].concat()));
        let c = load(&[
            "--listen",
            "127.0.0.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap();
        assert_eq!(c.public_url, "https://127.0.0.1:8443");
        assert_eq!(c.tls_reload_interval, DEFAULT_TLS_RELOAD_INTERVAL);
        assert_eq!(c.client_tls().unwrap().cert, PathBuf::from("c.pem"));
        assert!(c.upstream_tls().is_none());
        for (flags, says) in [
            (&["--tls-cert", "c.pem"][..], "--tls-cert needs --tls-key"),
            (&["--tls-key", "k.pem"][..], "--tls-key needs --tls-cert"),
            (
                &["--upstream-tls-cert", "c.pem"][..],
                "--upstream-tls-cert needs --upstream-tls-key",
            ),
            (
                &["--upstream-tls-key", "k.pem"][..],
                "--upstream-tls-key needs --upstream-tls-cert",
            ),
            (
                &["--upstream-client-ca", "ca.pem"][..],
                "--upstream-client-ca needs TLS on the upstream port",
            ),
            (
                &[
                    "--tls-cert",
                    "c",
                    "--tls-key",
                    "k",
                    "--tls-reload-interval",
                    "0s",
                ][..],
                "--tls-reload-interval",
            ),
        ] {
            let err = load(flags).unwrap_err().to_string();
            assert!(err.contains(says), "{flags:?}: {err}");
        }
        let file = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
        std::fs::write(
            &file,
            "access_keys = [\"0123456789abcdef0123\"]\nupstream_tls_cert = \"/s/up.pem\"\nupstream_tls_key = \"/s/up.key\"\nupstream_client_ca = \"/s/ca.pem\"\ntls_reload_interval = \"5s\"\n",
        )
        .unwrap();
        let c = Config::load(args(&["--config", file.to_str().unwrap()])).unwrap();
        std::fs::remove_file(&file).ok();
        let up = c.upstream_tls().unwrap();
        assert_eq!(up.client_ca, Some(PathBuf::from("/s/ca.pem")));
        assert_eq!(c.tls_reload_interval, Duration::from_secs(5));
        assert!(c.public_url.starts_with("http://"), "{}", c.public_url);
    }
}
