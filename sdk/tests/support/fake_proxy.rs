//! An in-process fake proxy for the SDK's tests: a real gRPC server on a
//! loopback port that implements `Upstream` and lets each test play the
//! proxy's side of the link message by message.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_proto::server_message::Kind as Out;
use switchboard_proto::upstream_server::{Upstream, UpstreamServer};
use switchboard_proto::{
    ClientInvocation, ConnectionOpened, Payload, ProxyFrame, ServerFrame, ServerMessage, Welcome,
    invocation_result, proxy_message,
};
use switchboard_sdk::{ConnectionString, Hub, Server};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

pub const KEY: &str = "integration-test-key";
pub const ENDPOINT: &str = "http://proxy.test:8080";
pub const WAIT: Duration = Duration::from_secs(5);

/// A link the fake proxy accepted.
struct Accepted {
    authorization: Option<String>,
    inbound: Streaming<ServerFrame>,
    outbound: mpsc::Sender<Result<ProxyFrame, Status>>,
}

struct FakeProxy {
    accepted: mpsc::UnboundedSender<Accepted>,
}

#[tonic::async_trait]
impl Upstream for FakeProxy {
    type LinkStream = ReceiverStream<Result<ProxyFrame, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<ServerFrame>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let (outbound, receiver) = mpsc::channel(64);
        let _ = self.accepted.send(Accepted {
            authorization,
            inbound: request.into_inner(),
            outbound,
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// The test's end of one link: read what the app server sent, answer it.
pub struct Link {
    pub authorization: Option<String>,
    pub inbound: Streaming<ServerFrame>,
    pub outbound: mpsc::Sender<Result<ProxyFrame, Status>>,
    pub buffered: VecDeque<ServerMessage>,
}

impl Link {
    /// The next message from the app server (frames may batch several).
    pub async fn next(&mut self) -> Out {
        self.try_next(WAIT)
            .await
            .expect("the app server sent nothing in time")
    }

    /// The next message, or `None` if nothing arrives within `wait`.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Out> {
        loop {
            if let Some(message) = self.buffered.pop_front() {
                return Some(message.kind.expect("message without kind"));
            }
            let frame = tokio::time::timeout(wait, self.inbound.message())
                .await
                .ok()?;
            let frame = frame.expect("link stream failed")?;
            self.buffered.extend(frame.messages);
        }
    }

    pub async fn send(&self, kind: proxy_message::Kind) {
        self.outbound
            .send(Ok(ProxyFrame::one(kind)))
            .await
            .expect("app server went away");
    }

    pub async fn welcome(&mut self) {
        self.welcome_as("node-1", "").await;
    }

    /// Answers `Hello` as node `node_id` of `cluster` ("" for standalone).
    pub async fn welcome_as(&mut self, node_id: &str, cluster: &str) {
        let Out::Hello(hello) = self.next().await else {
            panic!("the first message was not Hello");
        };
        self.send(proxy_message::Kind::Welcome(Welcome {
            node_id: node_id.into(),
            hubs: hello.hubs,
            max_message_bytes: 32 * 1024,
            cluster: cluster.into(),
        }))
        .await;
    }

    pub async fn open(&self, connection: &str, user: &str) {
        self.open_with(connection, user, "json").await;
    }

    /// Announces a connection speaking `protocol` ("json" or "messagepack").
    pub async fn open_with(&self, connection: &str, user: &str, protocol: &str) {
        let mut claims = HashMap::new();
        claims.insert("role".to_owned(), "\"admin\"".to_owned());
        self.send(proxy_message::Kind::ConnectionOpened(ConnectionOpened {
            connection: connection.into(),
            hub: "TestHub".into(),
            user_id: user.into(),
            claims,
            protocol: protocol.into(),
            transport: "WebSockets".into(),
            ..ConnectionOpened::default()
        }))
        .await;
    }

    pub async fn invoke(&self, connection: &str, id: &str, target: &str, args: &str) {
        self.send(proxy_message::Kind::ClientInvocation(ClientInvocation {
            connection: connection.into(),
            hub: "testhub".into(),
            invocation_id: id.into(),
            target: target.into(),
            arguments: Some(Payload::json(args.to_owned())),
            ..ClientInvocation::default()
        }))
        .await;
    }

    /// Invokes and returns the result's outcome, checking ids.
    pub async fn call(&mut self, id: &str, target: &str, args: &str) -> invocation_result::Outcome {
        self.invoke("c1", id, target, args).await;
        self.result(id).await
    }

    pub async fn result(&mut self, id: &str) -> invocation_result::Outcome {
        match self.next().await {
            Out::InvocationResult(result) => {
                assert_eq!(result.invocation_id, id);
                result.outcome.expect("result without outcome")
            }
            other => panic!("expected the result of {id}, got {other:?}"),
        }
    }
}

/// One fake proxy node listening on a loopback port.
pub struct Proxy {
    pub addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Accepted>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(UpstreamServer::new(FakeProxy {
                    accepted: accepted_tx,
                }))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self { addr, accepted }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next link the app server opens to this node.
    pub async fn accept(&mut self) -> Link {
        let accepted = tokio::time::timeout(WAIT, self.accepted.recv())
            .await
            .expect("the app server did not link in time")
            .unwrap();
        Link {
            authorization: accepted.authorization,
            inbound: accepted.inbound,
            outbound: accepted.outbound,
            buffered: VecDeque::new(),
        }
    }

    /// A link opened within `wait`, if any.
    pub async fn try_accept(&mut self, wait: Duration) -> Option<Link> {
        let accepted = tokio::time::timeout(wait, self.accepted.recv())
            .await
            .ok()??;
        Some(Link {
            authorization: accepted.authorization,
            inbound: accepted.inbound,
            outbound: accepted.outbound,
            buffered: VecDeque::new(),
        })
    }
}

/// A connection string for `server_endpoints` (comma-separated URLs).
pub fn connection_string(server_endpoints: &str) -> ConnectionString {
    ConnectionString::parse(&format!(
        "Endpoint={ENDPOINT};AccessKey={KEY};Version=1.0;ServerEndpoint={server_endpoints}"
    ))
    .unwrap()
}

pub struct Harness {
    proxy: Proxy,
    pub server: Server,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    /// Starts a fake proxy and an app server serving the hub `make_hub`
    /// builds (it gets the shared log).
    pub async fn start(make_hub: impl FnOnce(Arc<Mutex<Vec<String>>>) -> Hub) -> Self {
        let proxy = Proxy::start().await;
        let conn = connection_string(&proxy.url());
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = Server::builder(conn)
            .server_id("app-under-test")
            .reconnect_delay(Duration::from_millis(50), Duration::from_millis(200))
            .ack_timeout(Duration::from_secs(2))
            .hub(make_hub(log.clone()))
            .start();
        Self { proxy, server, log }
    }

    pub async fn accept(&mut self) -> Link {
        self.proxy.accept().await
    }

    pub async fn linked(&mut self) -> Link {
        let mut link = self.accept().await;
        link.welcome().await;
        tokio::time::timeout(WAIT, self.server.wait_ready())
            .await
            .expect("not ready in time")
            .unwrap();
        link
    }
}
