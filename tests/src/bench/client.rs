//! One bench client: reaches the proxy (negotiating through the app server,
//! or with a token it mints itself), opens the WebSocket from a chosen
//! source address, does the handshake, then receives `Bench` messages,
//! answers the keep-alive with pings, or invokes `Echo` back to back. Peer
//! clients (see [`super::peers`]) open their peer's WebSocket instead and
//! speak its framing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::peers::{self, System};
use super::stats::{Part, SequenceTracker};
use super::wire::{self, Incoming, Outgoing, Protocol};
use switchboard_tests::signalr;

/// The hub bench clients connect to (served by `benchhub`).
pub const HUB: &str = "benchhub";

/// Initial read buffer per connection: a few messages, not tungstenite's
/// 128 KiB default, so tens of thousands of clients fit in one process.
const READ_BUFFER: usize = 4096;

/// How a client obtains its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// Negotiate at the app server (which redirects with a token), then at the proxy.
    Negotiate,
    /// Mint a client token with the access key and open the WebSocket directly.
    Token,
}

/// Where clients connect and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The proxy's client URL root, `http://127.0.0.1:PORT`: the public
    /// URL tokens name, and where clients connect unless `replicas` is set.
    pub proxy_url: String,
    /// The app server, `http://127.0.0.1:PORT`.
    pub app_url: String,
    /// The access key, for [`Auth::Token`].
    pub access_key: String,
    /// How tokens are obtained.
    pub auth: Auth,
    /// Hub protocol.
    pub protocol: Protocol,
    /// What serves the clients.
    #[serde(default)]
    pub system: System,
    /// Client URL roots of Switchboard replicas sharing `proxy_url` as
    /// their public URL; client `i` connects to replica `i % len`. Empty
    /// for one proxy.
    #[serde(default)]
    pub replicas: Vec<String>,
}

impl Target {
    /// Where client `index` connects: its replica, or the proxy.
    pub fn proxy_for(&self, index: u64) -> &str {
        if self.replicas.is_empty() {
            &self.proxy_url
        } else {
            &self.replicas[(index % self.replicas.len() as u64) as usize]
        }
    }
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct Options {
    /// The user id in the token.
    pub user: String,
    /// Local address to bind before connecting (spreads ports over addresses).
    pub source: Option<Ipv4Addr>,
    /// `SO_RCVBUF`, so a client that stops reading backs up at the proxy fast.
    pub receive_buffer: Option<u32>,
    /// Groups (rooms, channels) to join once connected.
    pub groups: Vec<String>,
    /// The client URL root to connect to, when it is not the public URL
    /// (a replica's own address); tokens still name the public URL.
    pub connect_to: Option<String>,
}

/// A connected, handshaken client.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    system: System,
    protocol: Protocol,
    /// Bytes that followed the handshake response in its frame.
    leftover: Vec<u8>,
    next_invocation: u64,
}

/// What a receiving client is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read and count everything.
    Read,
    /// Read nothing (and send nothing) until told otherwise.
    Pause,
}

/// Wall-clock microseconds since the Unix epoch (what `benchhub` stamps).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// Connects, handshakes, and returns the client with how long that took;
/// then joins the groups of `options` (not part of that time).
pub async fn connect(
    http: &reqwest::Client,
    target: &Target,
    options: &Options,
) -> Result<(Client, Duration)> {
    let started = Instant::now();
    if target.system != System::Switchboard {
        return connect_peer(target, options, started).await;
    }
    let (url, token) = match target.auth {
        Auth::Negotiate => {
            let redirect =
                signalr::redirect_from_app(http, &target.app_url, HUB, Some(&options.user)).await?;
            let client_url = rehome(&redirect.url, &target.proxy_url, options);
            let negotiation =
                signalr::negotiate_at_proxy(http, &client_url, Some(&redirect.access_token))
                    .await?;
            let url = signalr::websocket_url(&client_url, Some(negotiation.id_for_transport()))?;
            (url, redirect.access_token)
        }
        Auth::Token => {
            let client_url = format!("{}/client/?hub={HUB}", target.proxy_url);
            let token = client_token(&target.access_key, &client_url, &options.user)?;
            let connect_url = rehome(&client_url, &target.proxy_url, options);
            (signalr::websocket_url(&connect_url, None)?, token)
        }
    };
    let stream = open(&url, options).await?;
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let ws = upgrade(request, stream).await?;
    let mut client = Client {
        ws,
        system: target.system,
        protocol: target.protocol,
        leftover: Vec::new(),
        next_invocation: 0,
    };
    client.handshake().await?;
    let took = started.elapsed();
    if !options.groups.is_empty() {
        client
            .invoke("JoinGroups", &[json!(options.groups)])
            .await?;
    }
    Ok((client, took))
}

/// `url` (under the public URL `public`) moved to the replica the client
/// connects to, if it has one.
fn rehome(url: &str, public: &str, options: &Options) -> String {
    match (&options.connect_to, url.strip_prefix(public)) {
        (Some(replica), Some(rest)) => format!("{replica}{rest}"),
        _ => url.to_owned(),
    }
}

/// [`connect`] for a peer: its WebSocket path, its handshake, its joins.
async fn connect_peer(
    target: &Target,
    options: &Options,
    started: Instant,
) -> Result<(Client, Duration)> {
    let path = match target.system {
        System::Pushpin => peers::pushpin::path(&options.groups),
        _ => peers::socketio::PATH.to_owned(),
    };
    let http_url = format!("{}{path}", target.proxy_url);
    let url = signalr::websocket_url(&http_url, None)?;
    let stream = open(&url, options).await?;
    let mut ws = upgrade(url.as_str().into_client_request()?, stream).await?;
    if target.system == System::Socketio {
        peers::socketio::handshake(&mut ws).await?;
    }
    let took = started.elapsed();
    if target.system == System::Socketio && !options.groups.is_empty() {
        peers::socketio::join(&mut ws, &options.groups).await?;
    }
    let client = Client {
        ws,
        system: target.system,
        protocol: target.protocol,
        leftover: Vec::new(),
        next_invocation: 0,
    };
    Ok((client, took))
}

/// Opens the TCP connection to `url`'s host from the chosen source address.
async fn open(url: &reqwest::Url, options: &Options) -> Result<TcpStream> {
    let host = url.host_str().context("WebSocket URL without a host")?;
    let port = url.port_or_known_default().context("no port")?;
    let address = SocketAddr::new(host.parse().context("the proxy host must be an IP")?, port);
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = options.source {
        socket
            .bind(SocketAddr::new(IpAddr::V4(source), 0))
            .with_context(|| format!("binding source address {source}"))?;
    }
    if let Some(size) = options.receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket
        .connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn upgrade(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    stream: TcpStream,
) -> Result<WebSocketStream<TcpStream>> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .context("WebSocket upgrade")?;
    Ok(ws)
}

/// A client token as the proxy expects it (see `sdk/src/token.rs`): HS256,
/// `kid` the first 8 bytes of SHA-256 of the key in hex, audience the hub's
/// client URL.
fn client_token(access_key: &str, audience: &str, user: &str) -> Result<String> {
    let now = unix_micros() / 1_000_000;
    let claims = json!({
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + 24 * 3600,
        "nameid": user,
    });
    let mut header = Header::new(Algorithm::HS256);
    let digest = Sha256::digest(access_key.as_bytes());
    header.kid = Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect());
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(access_key.as_bytes()),
    )?)
}

impl Client {
    async fn handshake(&mut self) -> Result<()> {
        self.ws
            .send(Frame::Text(self.protocol.handshake().into()))
            .await?;
        let mut got = Vec::new();
        loop {
            match self.ws.next().await {
                Some(Ok(Frame::Text(text))) => got.extend_from_slice(text.as_bytes()),
                Some(Ok(Frame::Binary(bytes))) => got.extend_from_slice(&bytes),
                Some(Ok(Frame::Close(close))) => bail!("closed during the handshake: {close:?}"),
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error).context("reading the handshake response"),
                None => bail!("the connection ended during the handshake"),
            }
            if let Some(rest) = wire::handshake_response(&got).map_err(|e| anyhow!(e))? {
                self.leftover = rest.to_vec();
                return Ok(());
            }
        }
    }

    /// Decodes one frame's payload in this client's framing.
    fn decode(&self, bytes: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
        match self.system {
            System::Switchboard => self.protocol.decode(bytes, out),
            System::Pushpin => peers::pushpin::decode(bytes, out),
            System::Socketio => peers::socketio::decode(bytes, out),
        }
    }

    async fn send(&mut self, frame: Outgoing) -> Result<()> {
        let frame = match frame {
            Outgoing::Text(text) => Frame::Text(text.into()),
            Outgoing::Binary(bytes) => Frame::Binary(bytes.into()),
        };
        self.ws.send(frame).await?;
        Ok(())
    }

    /// Invokes `target` and waits for its completion, skipping pings and
    /// other messages; returns its result.
    pub async fn invoke(&mut self, target: &str, arguments: &[Value]) -> Result<Value> {
        self.next_invocation += 1;
        let id = self.next_invocation;
        self.send(self.protocol.invocation(Some(id), target, arguments))
            .await?;
        let mut messages = Vec::new();
        loop {
            let frame = self
                .ws
                .next()
                .await
                .context("the connection ended awaiting a completion")??;
            let bytes: &[u8] = match &frame {
                Frame::Text(text) => text.as_bytes(),
                Frame::Binary(bytes) => bytes,
                Frame::Close(close) => bail!("closed awaiting a completion: {close:?}"),
                _ => continue,
            };
            messages.clear();
            self.protocol
                .decode(bytes, &mut messages)
                .map_err(|e| anyhow!(e))?;
            for message in messages.drain(..) {
                match message {
                    Incoming::Completion { id: got, result } if got == id => {
                        return result.map_err(|e| anyhow!("{target} failed: {e}"));
                    }
                    Incoming::Close { error } => bail!("server closed: {error:?}"),
                    _ => {}
                }
            }
        }
    }

    /// Calls `Echo([stream, seq, now, pad])` back to back until `deadline`,
    /// recording round-trip times and checking every answer.
    pub async fn echo_until(
        &mut self,
        deadline: Instant,
        stream: u64,
        pad: &str,
        part: &mut Part,
    ) -> Result<()> {
        let mut seq = 0u64;
        while Instant::now() < deadline {
            let started = Instant::now();
            let sent = json!([stream, seq, unix_micros(), pad]);
            let answer = self.invoke("Echo", std::slice::from_ref(&sent)).await?;
            let rtt = started.elapsed().as_micros() as u64;
            if answer == sent {
                part.arrival(stream, super::stats::Arrival::InOrder, rtt);
            } else {
                part.error(|| format!("Echo answered {answer} to {sent}"));
            }
            seq += 1;
        }
        Ok(())
    }

    /// Receives until the connection ends or the `mode` sender is dropped,
    /// counting `Bench` messages into `record`; pings every `ping_every` (if
    /// set) while reading; reads and sends nothing while `mode` says
    /// [`Mode::Pause`]. Returns how the connection ended (`"stopped"` when
    /// told to stop).
    pub async fn receive(
        mut self,
        mut mode: watch::Receiver<Mode>,
        ping_every: Option<Duration>,
        mut record: impl FnMut(Record),
    ) -> String {
        let mut tracker = SequenceTracker::default();
        let mut messages = Vec::new();
        let leftover = std::mem::take(&mut self.leftover);
        if let Err(error) = self.decode(&leftover, &mut messages) {
            record(Record::Error(error));
        }
        let mut ping = ping_every
            .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        loop {
            for message in messages.drain(..) {
                match message {
                    Incoming::Bench {
                        stream,
                        seq,
                        sent_us,
                    } => {
                        let latency = unix_micros().saturating_sub(sent_us);
                        record(Record::Arrival(stream, tracker.note(stream, seq), latency));
                    }
                    Incoming::Close { error } => {
                        return format!(
                            "Close message: {}",
                            error.as_deref().unwrap_or("(no error)")
                        );
                    }
                    Incoming::Answer(text) => {
                        if let Err(error) = self.send(Outgoing::Text(text)).await {
                            return format!("socket error answering a ping: {error}");
                        }
                    }
                    _ => {}
                }
            }
            if *mode.borrow_and_update() == Mode::Pause {
                if mode.changed().await.is_err() {
                    return "stopped".to_owned();
                }
                continue;
            }
            let tick = async {
                match ping.as_mut() {
                    Some(interval) => {
                        interval.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = self.ws.next() => {
                    let bytes: &[u8] = match &frame {
                        Some(Ok(Frame::Text(text))) => text.as_bytes(),
                        Some(Ok(Frame::Binary(bytes))) => bytes,
                        Some(Ok(Frame::Close(Some(close)))) => {
                            return format!("close frame {} {}", u16::from(close.code), close.reason);
                        }
                        Some(Ok(Frame::Close(None))) => return "close frame".to_owned(),
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return format!("socket error: {error}"),
                        None => return "end of stream".to_owned(),
                    };
                    if let Err(error) = self.decode(bytes, &mut messages) {
                        record(Record::Error(error));
                    }
                }
                () = tick => {
                    if let Err(error) = self.send(self.protocol.ping()).await {
                        return format!("socket error sending a ping: {error}");
                    }
                }
                changed = mode.changed() => {
                    if changed.is_err() {
                        return "stopped".to_owned();
                    }
                }
            }
        }
    }
}

/// What a receiving client reports.
#[derive(Debug)]
pub enum Record {
    /// A `Bench` message: stream, how it relates to earlier ones, latency in µs.
    Arrival(u64, super::stats::Arrival, u64),
    /// A message that could not be decoded.
    Error(String),
}
