//! Proxies sharing one Redis, or one Redis Cluster, act as one service:
//! in-process nodes with real `redis-server`s (started by each test on free
//! loopback ports), raw app-server links and raw WebSocket clients spread
//! across the nodes.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{AppServer, HubSocket, STEP, proxy, request, token};
use serde_json::{Value, json};
use switchboard_proto::{
    self as pb, ack::Status, proxy_message::Kind as Down, server_message::Kind as Up,
};
use switchboard_proxy::config::BusKind;
use switchboard_proxy::{Running, auth};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
const HUB: &str = "chat";
const CLUSTER: &str = "itest";

/// A `redis-server` on a loopback port, killed when dropped.
struct Redis {
    port: u16,
    child: Option<tokio::process::Child>,
    /// More `redis-server` arguments (a cluster node's).
    extra: Vec<String>,
}

impl Redis {
    async fn start() -> Self {
        let mut r = Self::not_started();
        r.restart().await;
        r
    }

    /// A free port with no Redis on it yet.
    fn not_started() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Self {
            port,
            child: None,
            extra: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: run scripts/test.sh, which installs redis-server"
        );
        let child = tokio::process::Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + STEP;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// A Redis Cluster of three masters on loopback ports, each with its share
/// of the slots; killed (and its directory removed) when dropped.
struct RedisCluster {
    nodes: Vec<Redis>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    async fn start() -> Self {
        let mut nodes: Vec<Redis> = (0..3).map(|_| Redis::not_started()).collect();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-cluster-{}-{}",
            std::process::id(),
            nodes[0].port
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for n in &mut nodes {
            // The cluster bus port would be the port + 10 000 otherwise,
            // past 65 535 for many ephemeral ports.
            let bus_port = Redis::not_started().port.to_string();
            n.extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus_port,
                "--cluster-config-file",
                &format!("nodes-{}.conf", n.port),
                "--dir",
                dir.to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec();
            n.restart().await;
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = tokio::process::Command::new(REDIS_CLI)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes, dir };
        for n in &cluster.nodes {
            let deadline = tokio::time::Instant::now() + STEP;
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut n.conn().await)
                    .await
                    .unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the cluster did not come up:\n{info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the nodes of a test meet.
trait Meeting {
    fn bus(&self) -> BusKind;

    /// Subscribers of `channel`.
    async fn subscribers(&self, channel: &str) -> i64;

    /// Waits until `channel` has exactly `n` subscribers.
    async fn wait_subscribers(&self, channel: &str, n: i64) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let now = self.subscribers(channel).await;
            if now == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{channel} has {now} subscribers, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Meeting for Redis {
    fn bus(&self) -> BusKind {
        BusKind::Redis(self.url())
    }

    async fn subscribers(&self, channel: &str) -> i64 {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut self.conn().await)
            .await
            .unwrap();
        n
    }
}

impl Meeting for RedisCluster {
    fn bus(&self) -> BusKind {
        // Two of the three nodes: the client learns the rest from them.
        let seeds: Vec<String> = self.nodes[..2]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        BusKind::parse(&format!("redis+cluster://{}", seeds.join(","))).unwrap()
    }

    /// Sharded subscribers, on whichever node owns the channel's slot.
    async fn subscribers(&self, channel: &str) -> i64 {
        let mut total = 0;
        for n in &self.nodes {
            let (_, count): (String, i64) = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(channel)
                .query_async(&mut n.conn().await)
                .await
                .unwrap();
            total += count;
        }
        total
    }
}

fn hub_channel() -> String {
    format!("{CLUSTER}:{HUB}:all")
}

fn group_channel(g: &str) -> String {
    format!("{CLUSTER}:{HUB}:g:{g}")
}

fn user_channel(u: &str) -> String {
    format!("{{{CLUSTER}:{HUB}:u:{u}}}")
}

async fn node(meeting: &impl Meeting) -> Running {
    let bus = meeting.bus();
    let p = proxy(|c| {
        c.bus = bus;
        c.cluster_name = CLUSTER.into();
        c.bus_timeout = Duration::from_secs(1);
    })
    .await;
    wait_ready(&p, true).await;
    p
}

async fn wait_ready(p: &Running, ready: bool) {
    wait_ready_within(p, ready, STEP).await;
}

/// Reconnecting can take the bus's longest backoff (5 s) and more.
async fn wait_ready_within(p: &Running, ready: bool, within: Duration) {
    let mut r = p.shared.bus.readiness();
    tokio::time::timeout(within, r.wait_for(|r| r.ready == ready))
        .await
        .expect("readiness did not change in time")
        .unwrap();
}

/// A raw JSON client of `HUB` on node `p`, as `user`.
struct Client {
    id: String,
    socket: HubSocket,
}

impl Client {
    async fn connect(p: &Running, user: &str) -> Self {
        let aud = auth::client_audience(&p.shared.config.public_url, HUB);
        let t = token(&aud, json!({"nameid": user}));
        let a = request(
            p.client_addr,
            "POST",
            &format!("/client/negotiate?hub={HUB}&negotiateVersion=1"),
            &format!("Authorization: Bearer {t}\r\n"),
            b"",
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let body: Value = serde_json::from_slice(&a.body).unwrap();
        let conn_token = body["connectionToken"].as_str().unwrap();
        let url = format!("ws://{}/client/?hub={HUB}&id={conn_token}", p.client_addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut socket = HubSocket::new(ws);
        socket.send(json!({"protocol": "json", "version": 1})).await;
        assert_eq!(socket.next().await, json!({}));
        Self {
            id: body["connectionId"].as_str().unwrap().to_owned(),
            socket,
        }
    }

    /// The first argument of every invocation received until nothing more
    /// arrives for a while, sorted.
    async fn received(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(v) = tokio::time::timeout(Duration::from_millis(600), self.socket.next()).await
        {
            if v.is_null() {
                break;
            }
            assert_eq!(v["type"], 1, "{v}");
            got.push(v["arguments"][0].as_str().unwrap().to_owned());
        }
        got.sort();
        got
    }
}

/// Waits for the app server's Ack with `id`, skipping other messages.
async fn ack(app: &mut AppServer, id: u64) -> pb::Ack {
    loop {
        if let Down::Ack(a) = app.next().await
            && a.ack_id == id
        {
            return a;
        }
    }
}

fn send(audience: pb::audience::Target, excluded: &[&str], tag: &str) -> Up {
    Up::Send(pb::Send {
        hub: HUB.into(),
        audience: Some(pb::Audience {
            target: Some(audience),
        }),
        excluded: excluded.iter().map(|s| s.to_string()).collect(),
        target: "m".into(),
        arguments: Some(pb::Payload::json(format!("[\"{tag}\"]"))),
        ack_id: 0,
        local_only: false,
    })
}

fn list(ids: &[&str]) -> pb::IdList {
    pb::IdList {
        ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

fn group_change(group: &str, member: pb::group_change::Member, add: bool, ack_id: u64) -> Up {
    use pb::group_change::Action;
    Up::GroupChange(pb::GroupChange {
        hub: HUB.into(),
        group: group.into(),
        member: Some(member),
        action: if add { Action::Add } else { Action::Remove } as i32,
        ack_id,
        ttl_seconds: 0,
    })
}

fn conn_member(c: &Client) -> pb::group_change::Member {
    pb::group_change::Member::Connection(c.id.clone())
}

#[tokio::test]
async fn sends_reach_exactly_their_targets_on_every_node_once() {
    sends_reach_exactly_their_targets(&Redis::start().await).await;
}

#[tokio::test]
async fn sends_reach_exactly_their_targets_through_a_redis_cluster() {
    sends_reach_exactly_their_targets(&RedisCluster::start().await).await;
}

async fn sends_reach_exactly_their_targets(redis: &impl Meeting) {
    use pb::audience::Target;
    let nodes = [node(redis).await, node(redis).await, node(redis).await];
    let mut apps = Vec::new();
    for n in &nodes {
        let app = AppServer::linked(n, &[HUB]).await;
        assert_eq!(app.welcome.cluster, CLUSTER);
        assert_eq!(app.welcome.node_id, n.shared.node_id.as_str());
        apps.push(app);
    }
    let mut a = Client::connect(&nodes[0], "u1").await;
    let mut b = Client::connect(&nodes[0], "u2").await;
    let mut c = Client::connect(&nodes[1], "u1").await;
    let mut d = Client::connect(&nodes[1], "u3").await;
    let mut e = Client::connect(&nodes[2], "u2").await;
    redis.wait_subscribers(&hub_channel(), 3).await;

    // Group members on every node, added through node 0: remote adds are acked.
    for (i, client) in [&a, &c, &e].into_iter().enumerate() {
        apps[0]
            .send(group_change("g", conn_member(client), true, 10 + i as u64))
            .await;
        let ack = ack(&mut apps[0], 10 + i as u64).await;
        assert_eq!(ack.status, Status::Ok as i32, "{}", ack.message);
    }
    apps[1]
        .send(group_change("h", conn_member(&c), true, 20))
        .await;
    assert_eq!(ack(&mut apps[1], 20).await.status, Status::Ok as i32);
    // No waiting for subscriptions: an acked add means the member's node hears the group.

    apps[0]
        .send(send(Target::All(pb::All {}), &[&d.id], "all-but-d"))
        .await;
    apps[1]
        .send(send(Target::Group("g".into()), &[], "g"))
        .await;
    apps[2]
        .send(send(Target::User("u1".into()), &[], "u1"))
        .await;
    apps[2]
        .send(send(
            Target::Groups(list(&["g", "h"])),
            &[&e.id],
            "g+h-but-e",
        ))
        .await;
    apps[0]
        .send(send(Target::Users(list(&["u1", "u2"])), &[], "u1+u2"))
        .await;
    apps[1]
        .send(send(
            Target::Connections(list(&[&a.id, &d.id, &e.id, &e.id])),
            &[],
            "a+d+e",
        ))
        .await;
    apps[0]
        .send(send(Target::Connection(e.id.clone()), &[], "e"))
        .await;

    let sorted = |v: &[&str]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        a.received().await,
        sorted(&["all-but-d", "g", "u1", "g+h-but-e", "u1+u2", "a+d+e"])
    );
    assert_eq!(b.received().await, sorted(&["all-but-d", "u1+u2"]));
    assert_eq!(
        c.received().await,
        sorted(&["all-but-d", "g", "u1", "g+h-but-e", "u1+u2"])
    );
    assert_eq!(d.received().await, sorted(&["a+d+e"]));
    assert_eq!(
        e.received().await,
        sorted(&["all-but-d", "g", "u1+u2", "a+d+e", "e"])
    );
}

fn query(subject: pb::query::Subject, ack_id: u64) -> Up {
    Up::Query(pb::Query {
        hub: HUB.into(),
        subject: Some(subject),
        ack_id,
    })
}

/// Two nodes, each with an app server; `far` (user "ann") on the second.
struct Pair {
    _nodes: [Running; 2],
    app1: AppServer,
    app2: AppServer,
    far: Client,
}

/// Queries about a connection, group or user held only by the other node
/// are answered by that node; absent ones are not found.
async fn remote_queries_are_answered(redis: &impl Meeting) -> Pair {
    use pb::query::Subject;
    let (n1, n2) = (node(redis).await, node(redis).await);
    let mut app1 = AppServer::linked(&n1, &[HUB]).await;
    let app2 = AppServer::linked(&n2, &[HUB]).await;
    let far = Client::connect(&n2, "ann").await;

    // A group with its only member on node 2, created from node 1.
    app1.send(group_change("room", conn_member(&far), true, 1))
        .await;
    assert_eq!(ack(&mut app1, 1).await.status, Status::Ok as i32);
    redis.wait_subscribers(&group_channel("room"), 1).await;
    redis.wait_subscribers(&user_channel("ann"), 1).await;

    let asks = [
        (Subject::Connection(far.id.clone()), Status::Ok),
        (Subject::Group("room".into()), Status::Ok),
        (Subject::Group("empty".into()), Status::NotFound),
        (Subject::User("ann".into()), Status::Ok),
        (Subject::User("bob".into()), Status::NotFound),
        // A connection id naming no node of the cluster.
        (
            Subject::Connection("zzzzzzAAAAAAAAAAAAAAAA".into()),
            Status::NotFound,
        ),
    ];
    for (i, (subject, expected)) in asks.into_iter().enumerate() {
        let id = 100 + i as u64;
        app1.send(query(subject.clone(), id)).await;
        let a = ack(&mut app1, id).await;
        assert_eq!(a.status, expected as i32, "{subject:?}: {}", a.message);
    }
    Pair {
        _nodes: [n1, n2],
        app1,
        app2,
        far,
    }
}

#[tokio::test]
async fn remote_queries_are_answered_through_a_redis_cluster() {
    remote_queries_are_answered(&RedisCluster::start().await).await;
}

#[tokio::test]
async fn remote_requests_are_answered_and_time_out_clearly() {
    use pb::query::Subject;
    let redis = Redis::start().await;
    let Pair {
        _nodes,
        mut app1,
        mut app2,
        mut far,
    } = remote_queries_are_answered(&redis).await;

    // A node that received the request but never answers.
    let mut silent = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    silent
        .subscribe(format!("{CLUSTER}:node:zzzzzz"))
        .await
        .unwrap();
    app1.send(group_change(
        "room",
        pb::group_change::Member::Connection("zzzzzzAAAAAAAAAAAAAAAA".into()),
        true,
        200,
    ))
    .await;
    let a = ack(&mut app1, 200).await;
    assert_eq!(a.status, Status::Error as i32);
    assert_eq!(a.message, "node zzzzzz did not answer within 1 s");

    // Remote close: the client gets its Close, node 2's app server the end.
    app1.send(Up::CloseConnection(pb::CloseConnection {
        connection: far.id.clone(),
        reason: "bye".into(),
        allow_reconnect: false,
        ack_id: 300,
    }))
    .await;
    assert_eq!(ack(&mut app1, 300).await.status, Status::Ok as i32);
    let close = far.socket.next().await;
    assert_eq!(
        (close["type"].clone(), close["error"].clone()),
        (json!(7), json!("bye"))
    );
    loop {
        if let Down::ConnectionClosed(c) = app2.next().await {
            assert_eq!(c.connection, far.id);
            break;
        }
    }
    // Once gone, node 2 leaves the group's channel: nobody is subscribed.
    redis.wait_subscribers(&group_channel("room"), 0).await;
    app1.send(query(Subject::Group("room".into()), 400)).await;
    assert_eq!(ack(&mut app1, 400).await.status, Status::NotFound as i32);
}

#[tokio::test]
async fn only_nodes_with_members_subscribe_to_a_group() {
    let redis = Redis::start().await;
    let (n1, n2) = (node(&redis).await, node(&redis).await);
    let mut app1 = AppServer::linked(&n1, &[HUB]).await;
    let _app2 = AppServer::linked(&n2, &[HUB]).await;
    let a = Client::connect(&n1, "a").await;
    let _b = Client::connect(&n2, "b").await;
    redis.wait_subscribers(&hub_channel(), 2).await;
    app1.send(group_change("solo", conn_member(&a), true, 1))
        .await;
    assert_eq!(ack(&mut app1, 1).await.status, Status::Ok as i32);
    redis.wait_subscribers(&group_channel("solo"), 1).await;
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        // User channels start with `{`, a Redis Cluster hash tag.
        .arg(format!("*{CLUSTER}:*"))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let mut channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    channels.sort();
    let mut expected = vec![
        hub_channel(),
        group_channel("solo"),
        user_channel("a"),
        user_channel("b"),
        format!("{CLUSTER}:node:{}", n1.shared.node_id),
        format!("{CLUSTER}:node:{}", n2.shared.node_id),
    ];
    expected.sort();
    assert_eq!(channels, expected);
    app1.send(group_change("solo", conn_member(&a), false, 2))
        .await;
    assert_eq!(ack(&mut app1, 2).await.status, Status::Ok as i32);
    redis.wait_subscribers(&group_channel("solo"), 0).await;
}

#[tokio::test]
async fn user_groups_cover_future_connections_on_any_node_until_their_ttl() {
    user_groups_cover_future_connections(&Redis::start().await).await;
}

#[tokio::test]
async fn user_groups_cover_future_connections_through_a_redis_cluster() {
    user_groups_cover_future_connections(&RedisCluster::start().await).await;
}

async fn user_groups_cover_future_connections(redis: &impl Meeting) {
    use pb::audience::Target;
    let (n1, n2) = (node(redis).await, node(redis).await);
    let app1 = AppServer::linked(&n1, &[HUB]).await;
    let mut app2 = AppServer::linked(&n2, &[HUB]).await;
    let mut first = Client::connect(&n1, "vip-user").await;
    let mut other = Client::connect(&n2, "someone").await;
    let change = |ttl_seconds, ack_id| {
        Up::GroupChange(pb::GroupChange {
            hub: HUB.into(),
            group: "vips".into(),
            member: Some(pb::group_change::Member::User("vip-user".into())),
            action: pb::group_change::Action::Add as i32,
            ack_id,
            ttl_seconds,
        })
    };
    // Through the node that does not hold the user; acked once applied.
    app2.send(change(3, 1)).await;
    let a = ack(&mut app2, 1).await;
    assert_eq!(a.status, Status::Ok as i32, "{}", a.message);
    app2.send(send(Target::Group("vips".into()), &[], "vip"))
        .await;
    assert_eq!(first.received().await, vec!["vip"]);

    // A later connection of the user, on the other node, is in the group too
    // (once its node loaded the user's groups).
    let mut later = Client::connect(&n2, "vip-user").await;
    redis.wait_subscribers(&group_channel("vips"), 2).await;
    app1.send(send(Target::Group("vips".into()), &[], "vip2"))
        .await;
    assert_eq!(first.received().await, vec!["vip2"]);
    assert_eq!(later.received().await, vec!["vip2"]);
    assert_eq!(other.received().await, Vec::<String>::new());

    // After the TTL the memberships end everywhere.
    redis.wait_subscribers(&group_channel("vips"), 0).await;
    app1.send(send(Target::Group("vips".into()), &[], "late"))
        .await;
    assert_eq!(first.received().await, Vec::<String>::new());
    assert_eq!(later.received().await, Vec::<String>::new());
}

async fn readyz(addr: SocketAddr) -> (u16, String) {
    let a = request(addr, "GET", "/readyz", "", b"").await;
    (a.status, a.text().to_owned())
}

fn metric(p: &Running, name: &str) -> f64 {
    let text = p.shared.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[tokio::test]
async fn a_redis_outage_keeps_local_delivery_and_heals() {
    use pb::audience::Target;
    let mut redis = Redis::start().await;
    let (n1, n2) = (node(&redis).await, node(&redis).await);
    let mut app1 = AppServer::linked(&n1, &[HUB]).await;
    let mut app2 = AppServer::linked(&n2, &[HUB]).await;
    let mut near = Client::connect(&n1, "x").await;
    let mut far = Client::connect(&n2, "y").await;
    redis.wait_subscribers(&hub_channel(), 2).await;
    assert_eq!(readyz(n1.admin_addr).await.0, 200);
    assert_eq!(metric(&n1, "switchboard_bus_connected"), 1.0);

    redis.kill().await;
    wait_ready(&n1, false).await;
    wait_ready(&n2, false).await;
    let (status, body) = readyz(n1.admin_addr).await;
    assert_eq!(status, 503);
    assert!(body.contains("Redis"), "{body}");
    for app in [&mut app1, &mut app2] {
        loop {
            if let Down::NodeStatus(s) = app.next().await {
                assert!(!s.ready);
                break;
            }
        }
    }
    // An app server linking meanwhile hears at once that the node is cut off.
    let mut late = AppServer::linked(&n1, &[HUB]).await;
    assert_eq!(
        late.next().await,
        Down::NodeStatus(pb::NodeStatus { ready: false })
    );

    app1.send(send(Target::All(pb::All {}), &[], "during"))
        .await;
    assert_eq!(near.received().await, vec!["during"]);
    assert_eq!(far.received().await, Vec::<String>::new());
    assert_eq!(metric(&n1, "switchboard_bus_publish_failures_total"), 1.0);
    assert_eq!(metric(&n1, "switchboard_bus_connected"), 0.0);
    // The app server's copy for a node cut off from the bus reaches that
    // node's clients, and only them.
    let mut copy = send(Target::All(pb::All {}), &[], "copy");
    if let Up::Send(s) = &mut copy {
        s.local_only = true;
    }
    app2.send(copy.clone()).await;
    assert_eq!(far.received().await, vec!["copy"]);
    assert_eq!(near.received().await, Vec::<String>::new());

    redis.restart().await;
    for n in [&n1, &n2] {
        wait_ready_within(n, true, Duration::from_secs(10)).await;
    }
    assert_eq!(readyz(n1.admin_addr).await, (200, "ready".to_owned()));
    for app in [&mut app1, &mut app2, &mut late] {
        loop {
            if let Down::NodeStatus(s) = app.next().await {
                assert!(s.ready);
                break;
            }
        }
    }
    redis.wait_subscribers(&hub_channel(), 2).await;
    app1.send(send(Target::All(pb::All {}), &[], "after")).await;
    assert_eq!(near.received().await, vec!["after"]);
    assert_eq!(far.received().await, vec!["after"]);
    // Back on the bus, a node drops such copies: the cluster's copy reaches
    // its clients.
    app2.send(copy).await;
    assert_eq!(far.received().await, Vec::<String>::new());
    assert_eq!(metric(&n1, "switchboard_bus_reconnects_total"), 1.0);
}

#[tokio::test]
async fn a_node_started_before_redis_serves_locally_and_joins_when_it_appears() {
    let mut redis = Redis::not_started();
    let url = redis.url();
    let n = proxy(|c| {
        c.bus = BusKind::Redis(url);
        c.cluster_name = CLUSTER.into();
    })
    .await;
    let (status, body) = readyz(n.admin_addr).await;
    assert_eq!(status, 503);
    assert!(body.contains(&redis.url()), "{body}");
    let mut app = AppServer::linked(&n, &[HUB]).await;
    assert_eq!(app.welcome.cluster, CLUSTER);
    assert_eq!(
        app.next().await,
        Down::NodeStatus(pb::NodeStatus { ready: false })
    );
    let mut client = Client::connect(&n, "x").await;
    app.send_all(HUB, "m", "[\"local\"]").await;
    assert_eq!(client.received().await, vec!["local"]);

    redis.restart().await;
    wait_ready_within(&n, true, Duration::from_secs(10)).await;
    assert_eq!(readyz(n.admin_addr).await.0, 200);
    loop {
        if let Down::NodeStatus(s) = app.next().await {
            assert!(s.ready);
            break;
        }
    }
    redis.wait_subscribers(&hub_channel(), 1).await;
    assert_eq!(metric(&n, "switchboard_bus_reconnects_total"), 0.0);
}

#[tokio::test]
async fn losing_a_redis_cluster_node_makes_nodes_not_ready_until_it_is_back() {
    use pb::audience::Target;
    let mut cluster = RedisCluster::start().await;
    let (n1, n2) = (node(&cluster).await, node(&cluster).await);
    let app1 = AppServer::linked(&n1, &[HUB]).await;
    let _app2 = AppServer::linked(&n2, &[HUB]).await;
    let mut near = Client::connect(&n1, "x").await;
    let mut far = Client::connect(&n2, "y").await;
    cluster.wait_subscribers(&hub_channel(), 2).await;

    // Not a seed: the nodes learnt of it from the cluster.
    cluster.nodes[2].kill().await;
    wait_ready(&n1, false).await;
    wait_ready(&n2, false).await;
    app1.send(send(Target::All(pb::All {}), &[], "during"))
        .await;
    assert_eq!(near.received().await, vec!["during"]);
    assert_eq!(far.received().await, Vec::<String>::new());

    cluster.nodes[2].restart().await;
    for n in [&n1, &n2] {
        wait_ready_within(n, true, Duration::from_secs(20)).await;
    }
    cluster.wait_subscribers(&hub_channel(), 2).await;
    app1.send(send(Target::All(pb::All {}), &[], "after")).await;
    assert_eq!(near.received().await, vec!["after"]);
    assert_eq!(far.received().await, vec!["after"]);
}
