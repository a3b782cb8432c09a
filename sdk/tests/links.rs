//! An app server linked to several proxy nodes (fake ones, in process):
//! replies per connection, cluster-wide messages once per cluster,
//! failover, readiness and DNS discovery.

#[path = "support/fake_proxy.rs"]
mod fake_proxy;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fake_proxy::{Link, Proxy, WAIT, connection_string};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use switchboard_proto::server_message::Kind as Out;
use switchboard_proto::{
    Ack, ConnectionOpened, NodeStatus, ack, audience, invocation_result, proxy_message,
};
use switchboard_sdk::{
    ConnectionString, Context, Disconnect, ErrorKind, Hub, HubError, LinkInfo, Resolve, Server,
};

const A: &str = "nodeAA";
const B: &str = "nodeBB";
const QUIET: Duration = Duration::from_millis(300);

type Log = Arc<Mutex<Vec<String>>>;

fn hub(log: Log) -> Hub {
    let connected = log.clone();
    Hub::builder("testhub")
        .on_connected(move |ctx: Context| {
            connected
                .lock()
                .push(format!("connected {}", ctx.connection_id()));
            async {}
        })
        .on_disconnected(move |ctx: Context, disconnect: Disconnect| {
            log.lock().push(format!(
                "disconnected {} {}",
                ctx.connection_id(),
                disconnect.reason
            ));
            async {}
        })
        .method("Echo", |_ctx: Context, (s,): (String,)| async move {
            Ok::<_, HubError>(s)
        })
        .build()
}

fn start(conn: ConnectionString, log: &Log) -> Server {
    builder(conn, log).start()
}

fn builder(conn: ConnectionString, log: &Log) -> switchboard_sdk::ServerBuilder {
    Server::builder(conn)
        .server_id("app-under-test")
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(200))
        .ack_timeout(Duration::from_secs(2))
        .hub(hub(log.clone()))
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn up_links(server: &Server) -> Vec<LinkInfo> {
    server.links().into_iter().filter(|l| l.up).collect()
}

struct Two {
    a: Link,
    b: Link,
    proxy_a: Proxy,
    server: Server,
    log: Log,
}

/// An app server linked to nodes A and B with the given cluster names.
async fn two_nodes(cluster_a: &str, cluster_b: &str) -> Two {
    let mut proxy_a = Proxy::start().await;
    let mut proxy_b = Proxy::start().await;
    let log = Log::default();
    let conn = connection_string(&format!("{},{}", proxy_a.url(), proxy_b.url()));
    let server = start(conn, &log);
    let mut a = proxy_a.accept().await;
    a.welcome_as(A, cluster_a).await;
    let mut b = proxy_b.accept().await;
    b.welcome_as(B, cluster_b).await;
    wait_until("both links up", || up_links(&server).len() == 2).await;
    Two {
        a,
        b,
        proxy_a,
        server,
        log,
    }
}

fn value(outcome: invocation_result::Outcome) -> String {
    match outcome {
        invocation_result::Outcome::Value(payload) => {
            String::from_utf8(payload.data.to_vec()).unwrap()
        }
        other => panic!("expected a value, got {other:?}"),
    }
}

async fn answer(link: &Link, ack_id: u64, status: ack::Status, message: &str) {
    link.send(proxy_message::Kind::Ack(Ack {
        ack_id,
        status: status as i32,
        message: message.into(),
    }))
    .await;
}

async fn next_send(link: &mut Link) -> switchboard_proto::Send {
    match link.next().await {
        Out::Send(send) => send,
        other => panic!("expected a Send, got {other:?}"),
    }
}

fn audience(send: &switchboard_proto::Send) -> audience::Target {
    send.audience.clone().unwrap().target.unwrap()
}

/// Counts the sends a link receives until it is quiet.
async fn count_sends(link: &mut Link) -> usize {
    let (cluster_wide, local_only) = count_sends_by_kind(link).await;
    assert_eq!(local_only, 0, "unexpected local-only copies");
    cluster_wide
}

/// Sends received: (ordinary, local-only copies).
async fn count_sends_by_kind(link: &mut Link) -> (usize, usize) {
    let mut counts = (0, 0);
    while let Some(message) = link.try_next(QUIET).await {
        match message {
            Out::Send(send) if send.local_only => counts.1 += 1,
            Out::Send(_) => counts.0 += 1,
            other => panic!("expected a Send, got {other:?}"),
        }
    }
    counts
}

async fn query(link: &mut Link) -> u64 {
    match link.next().await {
        Out::Query(query) => query.ack_id,
        other => panic!("expected a Query, got {other:?}"),
    }
}

async fn group_change(link: &mut Link) -> u64 {
    match link.next().await {
        Out::GroupChange(change) => change.ack_id,
        other => panic!("expected a GroupChange, got {other:?}"),
    }
}

#[tokio::test]
async fn replies_and_connection_messages_take_the_connections_link() {
    let Two {
        mut a,
        mut b,
        server,
        ..
    } = two_nodes("", "").await;
    let hub = server.hub("testhub").unwrap();
    a.open("nodeAAc1", "").await;
    b.open("nodeBBc2", "").await;

    a.invoke("nodeAAc1", "1", "Echo", r#"["from a"]"#).await;
    b.invoke("nodeBBc2", "2", "Echo", r#"["from b"]"#).await;
    assert_eq!(value(a.result("1").await), r#""from a""#);
    assert_eq!(value(b.result("2").await), r#""from b""#);

    // Not a connection of this app server: its id names node B.
    hub.clients()
        .client("nodeBBzz")
        .send("M", ())
        .await
        .unwrap();
    let send = next_send(&mut b).await;
    assert_eq!(
        audience(&send),
        audience::Target::Connection("nodeBBzz".into())
    );

    let closing = tokio::spawn({
        let hub = hub.clone();
        async move { hub.close_connection("nodeAAc1", "bye", false).await }
    });
    let Out::CloseConnection(close) = a.next().await else {
        panic!("expected a CloseConnection on A");
    };
    answer(&a, close.ack_id, ack::Status::Ok, "").await;
    closing.await.unwrap().unwrap();

    let joining = tokio::spawn({
        let hub = hub.clone();
        async move { hub.groups().add("nodeBBc2", "room").await }
    });
    let ack_id = group_change(&mut b).await;
    answer(&b, ack_id, ack::Status::Ok, "").await;
    joining.await.unwrap().unwrap();

    // A node no link reaches: a clear error, nothing sent anywhere.
    let err = hub
        .clients()
        .client("nodeZZq")
        .send("M", ())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("nodeZZ"), "{err}");
    assert!(!hub.connection_exists("nodeZZq").await.unwrap());
    assert!(a.try_next(QUIET).await.is_none());
    assert!(b.try_next(QUIET).await.is_none());
}

#[tokio::test]
async fn standalone_nodes_each_get_cluster_wide_messages_once() {
    let Two {
        mut a,
        mut b,
        server,
        ..
    } = two_nodes("", "").await;
    let hub = server.hub("testhub").unwrap();

    hub.clients().all().send("News", ("hi",)).await.unwrap();
    assert_eq!(count_sends(&mut a).await, 1);
    assert_eq!(count_sends(&mut b).await, 1);

    hub.clients()
        .clients(["nodeAAx", "nodeBBy", "nodeBBz"])
        .send("M", ())
        .await
        .unwrap();
    let to_a = next_send(&mut a).await;
    let to_b = next_send(&mut b).await;
    assert_eq!(
        audience(&to_a),
        audience::Target::Connections(switchboard_proto::IdList {
            ids: vec!["nodeAAx".into()]
        })
    );
    assert_eq!(
        audience(&to_b),
        audience::Target::Connections(switchboard_proto::IdList {
            ids: vec!["nodeBBy".into(), "nodeBBz".into()]
        })
    );

    // Exists if any node says so.
    let asking = tokio::spawn({
        let hub = hub.clone();
        async move { hub.group_exists("room").await }
    });
    let (from_a, from_b) = (query(&mut a).await, query(&mut b).await);
    answer(&a, from_a, ack::Status::NotFound, "").await;
    answer(&b, from_b, ack::Status::Ok, "").await;
    assert!(asking.await.unwrap().unwrap());

    // A user's group change succeeds where the user is.
    let adding = tokio::spawn({
        let hub = hub.clone();
        async move { hub.groups().add_user("alice", "room").await }
    });
    let (from_a, from_b) = (group_change(&mut a).await, group_change(&mut b).await);
    answer(&a, from_a, ack::Status::NotFound, "").await;
    answer(&b, from_b, ack::Status::Ok, "").await;
    adding.await.unwrap().unwrap();

    let adding = tokio::spawn({
        let hub = hub.clone();
        async move { hub.groups().add_user("nobody", "room").await }
    });
    let (from_a, from_b) = (group_change(&mut a).await, group_change(&mut b).await);
    answer(&a, from_a, ack::Status::NotFound, "").await;
    answer(&b, from_b, ack::Status::NotFound, "").await;
    let err = adding.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // A membership for a while carries its time to live to every node.
    let adding = tokio::spawn({
        let hub = hub.clone();
        async move {
            hub.groups()
                .add_user_for("alice", "lobby", std::time::Duration::from_secs(90))
                .await
        }
    });
    for link in [&mut a, &mut b] {
        let Out::GroupChange(change) = link.next().await else {
            panic!("expected a GroupChange");
        };
        assert_eq!((change.group.as_str(), change.ttl_seconds), ("lobby", 90));
        answer(link, change.ack_id, ack::Status::Ok, "").await;
    }
    adding.await.unwrap().unwrap();

    // An error names the node it came from.
    let asking = tokio::spawn({
        let hub = hub.clone();
        async move { hub.user_exists("alice").await }
    });
    let (from_a, from_b) = (query(&mut a).await, query(&mut b).await);
    answer(&a, from_a, ack::Status::Error, "draining").await;
    answer(&b, from_b, ack::Status::NotFound, "").await;
    let err = asking.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    let text = err.to_string();
    assert!(
        text.contains("node 'nodeAA'") && text.contains("draining"),
        "{text}"
    );
}

#[tokio::test]
async fn one_cluster_gets_one_copy_and_fails_over_between_its_links() {
    let Two {
        mut a,
        mut b,
        mut proxy_a,
        server,
        log,
    } = two_nodes("east", "east").await;
    let hub = server.hub("testhub").unwrap();

    // Sends to one audience keep to one link, so they stay in order.
    for n in 0..5 {
        hub.clients()
            .group("room")
            .send("News", (n,))
            .await
            .unwrap();
    }
    let (on_a, on_b) = (count_sends(&mut a).await, count_sends(&mut b).await);
    assert!(
        (on_a, on_b) == (5, 0) || (on_a, on_b) == (0, 5),
        "{on_a} / {on_b}"
    );
    // Different audiences spread over the links, one copy each.
    for n in 0..16 {
        hub.clients()
            .group(format!("room-{n}"))
            .send("News", ())
            .await
            .unwrap();
    }
    let (on_a, on_b) = (count_sends(&mut a).await, count_sends(&mut b).await);
    assert_eq!(on_a + on_b, 16, "one copy per send");
    assert!(on_a > 0 && on_b > 0, "load not spread: {on_a} / {on_b}");

    // B cannot reach its cluster: cluster-wide messages go through A, and
    // B gets a copy for its own clients only.
    b.send(proxy_message::Kind::NodeStatus(NodeStatus { ready: false }))
        .await;
    wait_until("B reported not ready", || {
        server
            .links()
            .iter()
            .any(|l| l.node_id == B && l.up && !l.ready)
    })
    .await;
    for _ in 0..3 {
        hub.clients().group("room").send("News", ()).await.unwrap();
    }
    assert_eq!(count_sends(&mut a).await, 3);
    assert_eq!(count_sends_by_kind(&mut b).await, (0, 3));
    // Neither node reaches the cluster: each gets a local-only copy.
    a.send(proxy_message::Kind::NodeStatus(NodeStatus { ready: false }))
        .await;
    wait_until("A reported not ready", || {
        server.links().iter().all(|l| l.up && !l.ready)
    })
    .await;
    hub.clients().all().send("News", ()).await.unwrap();
    assert_eq!(count_sends_by_kind(&mut a).await, (0, 1));
    assert_eq!(count_sends_by_kind(&mut b).await, (0, 1));
    a.send(proxy_message::Kind::NodeStatus(NodeStatus { ready: true }))
        .await;
    b.send(proxy_message::Kind::NodeStatus(NodeStatus { ready: true }))
        .await;
    wait_until("both reported ready", || {
        server.links().iter().all(|l| l.ready)
    })
    .await;
    // A node no link leads to, inside the cluster: its bus forwards.
    hub.clients().client("nodeCCq").send("M", ()).await.unwrap();
    assert_eq!(count_sends(&mut a).await, 1);

    a.open("nodeAAc1", "").await;
    b.open("nodeBBc2", "").await;
    wait_until("both connected", || log.lock().len() == 2).await;

    // A's link drops: only A's connection ends; B's keeps running and
    // carries everything, including what is meant for A's node.
    drop(a);
    wait_until("A's connection ended", || {
        log.lock()
            .contains(&"disconnected nodeAAc1 link lost".to_owned())
    })
    .await;
    wait_until("A's link down", || up_links(&server).len() == 1).await;
    // It redials A; until A welcomes it again, B carries everything.
    let _redialled = proxy_a.accept().await;
    b.invoke("nodeBBc2", "1", "Echo", r#"["still here"]"#).await;
    assert_eq!(value(b.result("1").await), r#""still here""#);
    hub.clients().all().send("News", ()).await.unwrap();
    hub.clients()
        .client("nodeAAc1")
        .send("M", ())
        .await
        .unwrap();
    assert_eq!(count_sends(&mut b).await, 2);
    assert!(!log.lock().iter().any(|e| e.contains("nodeBBc2 link lost")));
}

#[tokio::test]
async fn failover_moves_a_connection_to_another_link_without_ending_it() {
    let Two {
        a,
        mut b,
        server,
        log,
        ..
    } = two_nodes("east", "east").await;
    a.open("nodeAAc1", "").await;
    wait_until("connected", || log.lock().len() == 1).await;
    b.send(proxy_message::Kind::ConnectionOpened(ConnectionOpened {
        connection: "nodeAAc1".into(),
        hub: "testhub".into(),
        protocol: "json".into(),
        migrated: true,
        ..ConnectionOpened::default()
    }))
    .await;
    b.invoke("nodeAAc1", "1", "Echo", r#"["moved"]"#).await;
    assert_eq!(value(b.result("1").await), r#""moved""#);

    // The old link going away no longer concerns it.
    drop(a);
    wait_until("A's link down", || up_links(&server).len() == 1).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(*log.lock(), ["connected nodeAAc1"]);
    let hub = server.hub("testhub").unwrap();
    hub.clients()
        .client("nodeAAc1")
        .send("M", ())
        .await
        .unwrap();
    assert_eq!(count_sends(&mut b).await, 1);
}

#[tokio::test]
async fn ready_while_one_of_two_endpoints_is_up() {
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let mut proxy = Proxy::start().await;
    let log = Log::default();
    let server = builder(connection_string(&proxy.url()), &log)
        .server_endpoint(&format!("http://{dead}"))
        .unwrap()
        .start();
    assert!(!server.is_ready());
    let mut link = proxy.accept().await;
    link.welcome_as(A, "").await;
    tokio::time::timeout(WAIT, server.wait_ready())
        .await
        .expect("not ready in time")
        .unwrap();
    assert!(server.is_ready());
    let links = server.links();
    assert_eq!(links.len(), 2);
    let up: Vec<_> = links.iter().filter(|l| l.up).collect();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].endpoint, proxy.url());
    assert_eq!(up[0].node_id, A);
    assert!(up[0].ready);

    let hub = server.hub("testhub").unwrap();
    hub.clients().all().send("News", ()).await.unwrap();
    assert_eq!(count_sends(&mut link).await, 1);
    server.shutdown().await;
    assert!(server.links().is_empty());
}

/// Answers look-ups from a list the test changes.
#[derive(Clone)]
struct FakeResolver {
    answer: Arc<Mutex<io::Result<Vec<SocketAddr>>>>,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
}

impl FakeResolver {
    fn new(addresses: Vec<SocketAddr>) -> Self {
        Self {
            answer: Arc::new(Mutex::new(Ok(addresses))),
            asked: Arc::default(),
        }
    }

    fn set(&self, answer: io::Result<Vec<SocketAddr>>) {
        *self.answer.lock() = answer;
    }
}

impl Resolve for FakeResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.asked.lock().push((host.to_owned(), port));
        let answer = match &*self.answer.lock() {
            Ok(addresses) => Ok(addresses.clone()),
            Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
        };
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn dns_discovery_links_to_new_addresses_and_closes_vanished_ones() {
    let mut proxy_a = Proxy::start().await;
    let mut proxy_b = Proxy::start().await;
    let resolver = FakeResolver::new(vec![proxy_a.addr]);
    let log = Log::default();
    let endpoint = "http://replicas.test:7070";
    let server = builder(connection_string(endpoint), &log)
        .dns_discovery(Duration::from_millis(50))
        .resolver(resolver.clone())
        .start();

    let mut a = proxy_a.accept().await;
    a.welcome_as(A, "east").await;
    tokio::time::timeout(WAIT, server.wait_ready())
        .await
        .expect("not ready in time")
        .unwrap();
    assert_eq!(resolver.asked.lock()[0], ("replicas.test".to_owned(), 7070));
    let links = server.links();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].endpoint, endpoint);
    assert_eq!(links[0].address, proxy_a.url());

    // A replica appears.
    resolver.set(Ok(vec![proxy_a.addr, proxy_b.addr]));
    let mut b = proxy_b.accept().await;
    b.welcome_as(B, "east").await;
    wait_until("two links up", || up_links(&server).len() == 2).await;

    // A failed look-up changes nothing.
    resolver.set(Err(io::Error::other("resolver unreachable")));
    tokio::time::sleep(QUIET).await;
    assert_eq!(up_links(&server).len(), 2);

    // A replica vanishes: its link closes gracefully, the other stays.
    resolver.set(Ok(vec![proxy_b.addr]));
    let started = tokio::time::Instant::now();
    assert!(a.try_next(WAIT).await.is_none());
    assert!(started.elapsed() < WAIT, "A's link was not closed");
    wait_until("only B listed", || {
        let links = server.links();
        links.len() == 1 && links[0].address == proxy_b.url() && links[0].up
    })
    .await;
    assert!(proxy_b.try_accept(QUIET).await.is_none(), "B linked twice");
    assert!(proxy_a.try_accept(QUIET).await.is_none(), "A relinked");
    server
        .hub("testhub")
        .unwrap()
        .clients()
        .all()
        .send("News", ())
        .await
        .unwrap();
    assert_eq!(count_sends(&mut b).await, 1);
}
