//! Shared by the proxy's integration tests: an in-process proxy, tokens, a
//! scripted app server on a raw gRPC link, and raw HTTP/1.1 requests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use switchboard_proto::{
    self as pb, ProxyFrame, ServerFrame, proxy_message::Kind as Down, server_message::Kind as Up,
    upstream_client::UpstreamClient,
};
use switchboard_proxy::config::Config;
use switchboard_proxy::{Running, auth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const KEY: &str = "transport-test-key-0123456789abcdef";
pub const STEP: Duration = Duration::from_secs(5);

pub fn token(aud: &str, extra: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({"aud": aud, "exp": now + 300, "iat": now, "nbf": now});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let header = Header {
        kid: Some(auth::key_id(KEY)),
        ..Default::default()
    };
    encode(&header, &claims, &EncodingKey::from_secret(KEY.as_bytes())).unwrap()
}

pub async fn proxy(configure: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config::for_tests(KEY);
    configure(&mut config);
    switchboard_proxy::start(config).await.unwrap()
}

/// A scripted app server.
pub struct AppServer {
    tx: mpsc::Sender<ServerFrame>,
    rx: tonic::Streaming<ProxyFrame>,
    pending: std::collections::VecDeque<Down>,
    /// The proxy's answer to Hello.
    pub welcome: pb::Welcome,
}

impl AppServer {
    /// Links with a valid app-server token.
    pub async fn linked(p: &Running, hubs: &[&str]) -> Self {
        let bearer = token(
            &auth::server_audience(&p.shared.config.public_url),
            json!({"sub": "test"}),
        );
        Self::connect(p, hubs, Some(bearer)).await.unwrap()
    }

    /// Links with `bearer` (or none); the proxy's refusal is the error.
    pub async fn connect(
        p: &Running,
        hubs: &[&str],
        bearer: Option<String>,
    ) -> Result<Self, tonic::Status> {
        let mut client = UpstreamClient::connect(format!("http://{}", p.upstream_addr))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(64);
        let hello = pb::Hello {
            server_id: "test".into(),
            hubs: hubs.iter().map(|h| h.to_string()).collect(),
            protocol_version: 1,
        };
        tx.send(ServerFrame::one(Up::Hello(hello))).await.unwrap();
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        if let Some(bearer) = bearer {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        }
        let rx = client.link(request).await?.into_inner();
        let mut server = Self {
            tx,
            rx,
            pending: Default::default(),
            welcome: Default::default(),
        };
        match server.next().await {
            Down::Welcome(w) => server.welcome = w,
            other => panic!("expected Welcome, got {other:?}"),
        }
        Ok(server)
    }

    /// The next raw frame from the proxy (for watching the link end).
    pub async fn next_frame(&mut self) -> Result<Option<ProxyFrame>, tonic::Status> {
        self.rx.message().await
    }

    pub async fn next(&mut self) -> Down {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return m;
            }
            let frame = tokio::time::timeout(STEP, self.rx.message())
                .await
                .expect("app server waited too long");
            let frame = frame.unwrap().expect("link ended");
            self.pending
                .extend(frame.messages.into_iter().filter_map(|m| m.kind));
        }
    }

    /// The next message if one arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Down> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            let frame = tokio::time::timeout(wait, self.rx.message()).await.ok()?;
            let frame = frame.unwrap().expect("link ended");
            self.pending
                .extend(frame.messages.into_iter().filter_map(|m| m.kind));
        }
    }

    pub async fn send(&self, kind: Up) {
        self.tx.send(ServerFrame::one(kind)).await.unwrap();
    }

    /// Sends `target(args)` to every client of `hub`.
    pub async fn send_all(&self, hub: &str, target: &str, args: &str) {
        self.send(Up::Send(pb::Send {
            hub: hub.into(),
            audience: Some(pb::Audience {
                target: Some(pb::audience::Target::All(pb::All {})),
            }),
            excluded: vec![],
            target: target.into(),
            arguments: Some(pb::Payload::json(args.to_owned())),
            ack_id: 0,
            local_only: false,
        }))
        .await;
    }
}

/// An HTTP answer read to its end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Raw header block, lower-cased.
    pub headers: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A header's value from a lower-cased header block.
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim())
    })
}

/// One request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut out))
        .await
        .expect("no answer in time")
        .unwrap();
    parse(&out)
}

fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers: head,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 4 + size..];
    }
    out
}

/// POSTs negotiate for `hub` with a token for `user`; returns the
/// connection token and the answer body.
pub async fn negotiate(p: &Running, hub: &str, user: &str) -> (String, Value) {
    let aud = auth::client_audience(&p.shared.config.public_url, hub);
    let t = token(&aud, json!({"nameid": user}));
    let a = request(
        p.client_addr,
        "POST",
        &format!("/client/negotiate?hub={hub}&negotiateVersion=1"),
        &format!("Authorization: Bearer {t}\r\n"),
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    (body["connectionToken"].as_str().unwrap().to_owned(), body)
}

/// A streaming response read chunk by chunk (server-sent events).
pub struct Streamed {
    stream: TcpStream,
    buf: Vec<u8>,
    pub status: u16,
    pub headers: String,
}

impl Streamed {
    pub async fn get(addr: SocketAddr, path: &str, headers: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut s = Self {
            stream,
            buf: Vec::new(),
            status: 0,
            headers: String::new(),
        };
        let split = loop {
            if let Some(i) = s.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            s.fill().await;
        };
        let head = String::from_utf8_lossy(&s.buf[..split]).to_ascii_lowercase();
        s.status = head[9..12].parse().unwrap();
        s.headers = head;
        s.buf.drain(..split + 4);
        s
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(STEP, self.stream.read(&mut chunk))
            .await
            .expect("nothing arrived in time")
            .unwrap();
        assert!(n > 0, "the stream ended");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next chunk of a chunked body, exactly as the server wrote it.
    pub async fn chunk(&mut self) -> Vec<u8> {
        loop {
            if let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size =
                    usize::from_str_radix(std::str::from_utf8(&self.buf[..eol]).unwrap(), 16)
                        .unwrap();
                if self.buf.len() >= eol + 4 + size {
                    let data = self.buf[eol + 2..eol + 2 + size].to_vec();
                    self.buf.drain(..eol + 4 + size);
                    return data;
                }
            }
            self.fill().await;
        }
    }

    /// Whether the server ended the body (a zero-size chunk or EOF).
    pub async fn ended(&mut self) -> bool {
        loop {
            if self.buf.starts_with(b"0\r\n") {
                return true;
            }
            if !self.buf.is_empty() && self.buf.windows(2).any(|w| w == b"\r\n") {
                return false;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(STEP, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return false,
            }
        }
    }
}

/// A client WebSocket over a plain TCP stream.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The JSON hub protocol over a raw client WebSocket: records out, records
/// in (pings skipped).
pub struct HubSocket {
    pub ws: Ws,
    buf: String,
}

impl HubSocket {
    pub fn new(ws: Ws) -> Self {
        Self {
            ws,
            buf: String::new(),
        }
    }

    /// Sends `v` as one record.
    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        let text = format!("{v}\u{1e}");
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
    }

    /// The next hub message, skipping pings; `Null` once the socket ended
    /// (close frame, end of stream, or a reset: a proxy that gave up on a
    /// client that stopped reading may end the socket before its close frame
    /// got through).
    pub async fn next(&mut self) -> Value {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            if let Some(i) = self.buf.find('\u{1e}') {
                let record: String = self.buf.drain(..=i).collect();
                let v: Value = serde_json::from_str(&record[..record.len() - 1]).unwrap();
                if v["type"] == 6 {
                    continue;
                }
                return v;
            }
            let m = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("client waited too long");
            match m {
                Some(Ok(Message::Text(t))) => self.buf.push_str(&t),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Value::Null,
                Some(Ok(_)) => {}
            }
        }
    }
}
