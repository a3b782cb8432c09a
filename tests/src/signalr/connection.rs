//! One client connection: the WebSocket, the JSON record framing on top of
//! it, the handshake and invocations.
//!
//! Nothing is read from the socket unless a method asks for the next
//! message, so a test can let a connection fall behind on purpose.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self, Message as Frame};

use super::ClientError;
use super::message::{Completion, Message, RECORD_SEPARATOR, invocation_record};

/// How long a connection waits for a reply or the next message unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket settings for [`Connection::open`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `SO_RCVBUF` in bytes, set before connecting so the window the client
    /// advertises stays small: with it a connection that is not read backs
    /// up at the sender quickly.
    pub receive_buffer: Option<u32>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server sent a WebSocket close frame (`code` is `None` when the frame had none).
    Closed {
        /// The close code, e.g. 1000 or 1011.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// The TCP stream ended without a close frame.
    Eof,
    /// The socket failed (e.g. a reset).
    Error(String),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed {
                code: Some(code),
                reason,
            } => write!(f, "close frame {code} {reason:?}"),
            Self::Closed { code: None, .. } => f.write_str("close frame without a code"),
            Self::Eof => f.write_str("end of stream without a close frame"),
            Self::Error(error) => write!(f, "socket error: {error}"),
        }
    }
}

/// A SignalR connection using the JSON hub protocol over a WebSocket.
pub struct Connection {
    ws: WebSocketStream<TcpStream>,
    /// Received bytes not yet split into records.
    unparsed: Vec<u8>,
    /// Messages that arrived while an invocation waited for its completion.
    queued: VecDeque<Message>,
    connection_id: Option<String>,
    last_invocation_id: u64,
    timeout: Duration,
    ended: Option<Ended>,
}

impl Connection {
    /// Opens the WebSocket to `url`, with `Authorization: Bearer` when a token
    /// is given. A refused upgrade is a [`ClientError::Status`]. No handshake yet.
    pub async fn open(
        url: &Url,
        access_token: Option<&str>,
        options: &ConnectOptions,
    ) -> Result<Self, ClientError> {
        let stream = connect_tcp(url, options).await?;
        let mut request = url.as_str().into_client_request()?;
        if let Some(token) = access_token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|error| {
                ClientError::Protocol(format!("token is not a valid header value: {error}"))
            })?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let ws = match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _response)) => ws,
            Err(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                return Err(ClientError::Status {
                    method: "GET",
                    url: url.to_string(),
                    status: response.status().as_u16(),
                    body: body.into_owned(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        Ok(Self {
            ws,
            unparsed: Vec::new(),
            queued: VecDeque::new(),
            connection_id: None,
            last_invocation_id: 0,
            timeout: DEFAULT_TIMEOUT,
            ended: None,
        })
    }

    /// The JSON protocol handshake, version 1.
    pub async fn handshake(&mut self) -> Result<(), ClientError> {
        self.handshake_with("json", 1).await
    }

    /// Sends a handshake request for `protocol`/`version` and waits for the
    /// answer: `Ok` for `{}`, [`ClientError::HandshakeRejected`] with the
    /// server's text for `{"error": ...}`.
    pub async fn handshake_with(
        &mut self,
        protocol: &str,
        version: u32,
    ) -> Result<(), ClientError> {
        let mut request = json!({"protocol": protocol, "version": version}).to_string();
        request.push(RECORD_SEPARATOR);
        self.send_text(request).await?;
        let timeout = self.timeout;
        let record = tokio::time::timeout(timeout, self.next_record())
            .await
            .map_err(|_| ClientError::Timeout(timeout, "the handshake response".into()))??;
        let Some(record) = record else {
            return Err(ClientError::Ended(self.end_reason()));
        };
        let response: Value = serde_json::from_slice(&record).map_err(|error| {
            ClientError::Protocol(format!(
                "handshake response {:?}: {error}",
                String::from_utf8_lossy(&record)
            ))
        })?;
        match response.get("error") {
            Some(Value::String(error)) => Err(ClientError::HandshakeRejected(error.clone())),
            Some(other) => Err(ClientError::HandshakeRejected(other.to_string())),
            None => Ok(()),
        }
    }

    /// The public connection id, when the connection was negotiated.
    pub fn connection_id(&self) -> Option<&str> {
        self.connection_id.as_deref()
    }

    pub(super) fn set_connection_id(&mut self, id: String) {
        self.connection_id = Some(id);
    }

    /// How long later calls wait for a reply or a message (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// How the connection ended, once it has.
    pub fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }

    /// Takes the messages that arrived while [`Connection::invoke`] waited,
    /// in order (they are otherwise returned by the next reads).
    pub fn take_queued(&mut self) -> Vec<Message> {
        self.queued.drain(..).collect()
    }

    /// Sends raw text as one WebSocket text frame.
    pub async fn send_text(&mut self, text: String) -> Result<(), ClientError> {
        self.ws.send(Frame::Text(text.into())).await?;
        Ok(())
    }

    /// A non-blocking invocation: no invocation id, so no completion comes back.
    pub async fn send(&mut self, target: &str, arguments: Value) -> Result<(), ClientError> {
        self.send_text(invocation_record(None, target, &arguments))
            .await
    }

    /// Invokes `target` and waits for its completion. Messages that arrive
    /// meanwhile are kept for [`Connection::next_message`], in order.
    pub async fn invoke(
        &mut self,
        target: &str,
        arguments: Value,
    ) -> Result<Completion, ClientError> {
        self.last_invocation_id += 1;
        let id = self.last_invocation_id.to_string();
        self.send_text(invocation_record(Some(&id), target, &arguments))
            .await?;
        let timeout = self.timeout;
        let completion = async {
            loop {
                match self.read_message().await? {
                    Some(Message::Completion(completion)) if completion.invocation_id == id => {
                        return Ok(completion);
                    }
                    Some(other) => self.queued.push_back(other),
                    None => return Err(ClientError::Ended(self.end_reason())),
                }
            }
        };
        tokio::time::timeout(timeout, completion)
            .await
            .map_err(|_| {
                ClientError::Timeout(
                    timeout,
                    format!("the completion of {target} (invocation {id})"),
                )
            })?
    }

    /// The next message other than a ping, or `None` once the connection ended.
    pub async fn next_message(&mut self) -> Result<Option<Message>, ClientError> {
        if let Some(message) = self.queued.pop_front() {
            return Ok(Some(message));
        }
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.read_message())
            .await
            .map_err(|_| ClientError::Timeout(timeout, "the next message".into()))?
    }

    /// The arguments of the next message, which must be an invocation of `target`.
    pub async fn expect_invocation(&mut self, target: &str) -> Result<Vec<Value>, ClientError> {
        match self.next_message().await? {
            Some(Message::Invocation {
                target: got,
                arguments,
                ..
            }) if got == target => Ok(arguments),
            Some(other) => Err(ClientError::Unexpected {
                expected: format!("an invocation of {target}"),
                got: other.describe(),
            }),
            None => Err(ClientError::Ended(self.end_reason())),
        }
    }

    /// Reads until the connection ends, returning every message read on the
    /// way (pings excepted) and how it ended. Fails if it has not ended
    /// within the timeout.
    pub async fn read_to_end(&mut self) -> Result<(Vec<Message>, Ended), ClientError> {
        let mut messages: Vec<Message> = self.queued.drain(..).collect();
        let timeout = self.timeout;
        let drained = tokio::time::timeout(timeout, async {
            while let Some(message) = self.read_message().await? {
                messages.push(message);
            }
            Ok::<_, ClientError>(())
        })
        .await;
        match drained {
            Ok(result) => result.map(|()| (messages, self.end_reason())),
            Err(_) => Err(ClientError::Timeout(
                timeout,
                format!(
                    "the connection to end ({} messages read meanwhile)",
                    messages.len()
                ),
            )),
        }
    }

    /// Sends a close frame (code 1000) and waits briefly for the server's.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        Ok(())
    }

    async fn read_message(&mut self) -> Result<Option<Message>, ClientError> {
        while let Some(record) = self.next_record().await? {
            match Message::parse(&record)? {
                Message::Ping => continue,
                message => return Ok(Some(message)),
            }
        }
        Ok(None)
    }

    /// The next complete record (without its separator), reading frames as
    /// needed; `None` once the connection ended.
    async fn next_record(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if let Some(end) = self
                .unparsed
                .iter()
                .position(|&byte| byte == RECORD_SEPARATOR as u8)
            {
                let mut record: Vec<u8> = self.unparsed.drain(..=end).collect();
                record.pop();
                return Ok(Some(record));
            }
            if self.ended.is_some() {
                return Ok(None);
            }
            match self.ws.next().await {
                Some(Ok(Frame::Text(text))) => self.unparsed.extend_from_slice(text.as_bytes()),
                Some(Ok(Frame::Binary(data))) => {
                    return Err(ClientError::Protocol(format!(
                        "binary frame of {} bytes on a JSON connection",
                        data.len()
                    )));
                }
                Some(Ok(Frame::Close(frame))) => {
                    self.ended = Some(match frame {
                        Some(frame) => Ended::Closed {
                            code: Some(frame.code.into()),
                            reason: frame.reason.to_string(),
                        },
                        None => Ended::Closed {
                            code: None,
                            reason: String::new(),
                        },
                    });
                }
                // Control frames; tungstenite answers pings by itself.
                Some(Ok(_)) => {}
                Some(Err(tungstenite::Error::Protocol(
                    ProtocolError::ResetWithoutClosingHandshake,
                )))
                | None => {
                    self.ended = Some(Ended::Eof);
                }
                Some(Err(error)) => self.ended = Some(Ended::Error(error.to_string())),
            }
        }
    }

    fn end_reason(&self) -> Ended {
        self.ended.clone().unwrap_or(Ended::Eof)
    }
}

async fn connect_tcp(url: &Url, options: &ConnectOptions) -> Result<TcpStream, ClientError> {
    let bad_url = |why: &str| ClientError::Url(url.to_string(), why.to_owned());
    let host = url.host_str().ok_or_else(|| bad_url("no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad_url("no port"))?;
    let address = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| bad_url(&error.to_string()))?
        .next()
        .ok_or_else(|| bad_url("host has no address"))?;
    let io = |error: std::io::Error| ClientError::from(tungstenite::Error::Io(error));
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io)?;
    if let Some(size) = options.receive_buffer {
        socket.set_recv_buffer_size(size).map_err(io)?;
    }
    let stream = socket.connect(address).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    Ok(stream)
}
