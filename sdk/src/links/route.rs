//! Where each message goes when the app server has several links.
//!
//! - About one connection: the link it arrived on; else a link to the node
//!   its id names (ids start with the node id); else a link into a cluster
//!   (the cluster's bus forwards it). With a single node or cluster linked,
//!   that one is always asked, so its answer (e.g. not found) decides.
//! - Cluster-wide (broadcast, groups, users, user group changes, group and
//!   user queries): once per cluster, where a standalone node is its own
//!   cluster; through a ready link of it, failing over to another link of
//!   it when one is down. Sends to one audience keep to one link of the
//!   cluster (chosen by the audience), so they arrive in order while
//!   different audiences spread over the links; acknowledged requests take
//!   turns.
//! - Several connections: once per cluster; to standalone nodes only the
//!   ids that each one issued.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message as _;
use switchboard_proto::audience::Target as Audience;
use switchboard_proto::server_message::Kind;
use switchboard_proto::{IdList, Payload, Send, client_result};

use super::Links;
use crate::error::{Error, ErrorKind, Repr, Result};
use crate::link::{AckReply, LinkStatus, Peer, View};

/// What cluster-wide messages are sent once to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Group {
    Cluster(String),
    /// A standalone node, by id.
    Node(String),
    /// A standalone node that gave no id, by the address dialled.
    Anonymous(String),
}

impl Group {
    fn of(peer: &Peer, view: &View) -> Self {
        if !view.cluster.is_empty() {
            Self::Cluster(view.cluster.clone())
        } else if !view.node_id.is_empty() {
            Self::Node(view.node_id.clone())
        } else {
            Self::Anonymous(peer.target.address.clone())
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Cluster(name) => format!("cluster '{name}'"),
            Self::Node(id) => format!("node '{id}'"),
            Self::Anonymous(address) => format!("proxy at {address}"),
        }
    }
}

/// One cluster (or standalone node) and its up links, best first.
struct Route {
    group: Group,
    candidates: Vec<Arc<Peer>>,
}

impl Links {
    /// Every link with what its node told, in the order they were opened.
    fn views(&self) -> Vec<(Arc<Peer>, View)> {
        self.peers()
            .into_iter()
            .map(|peer| {
                let view = peer.view();
                (peer, view)
            })
            .collect()
    }

    /// One route per cluster reachable over an up link, its links starting
    /// at `turn` (modulo their number); `LinkDown` when no link is up.
    fn cluster_routes(&self, turn: u64) -> Result<Vec<Route>> {
        let mut routes: Vec<Route> = Vec::new();
        let mut ready: Vec<Vec<bool>> = Vec::new();
        for (peer, view) in self.views() {
            if view.status != LinkStatus::Ready {
                continue;
            }
            let group = Group::of(&peer, &view);
            match routes.iter().position(|route| route.group == group) {
                Some(index) => {
                    routes[index].candidates.push(peer);
                    ready[index].push(view.node_ready);
                }
                None => {
                    routes.push(Route {
                        group,
                        candidates: vec![peer],
                    });
                    ready.push(vec![view.node_ready]);
                }
            }
        }
        if routes.is_empty() {
            return Err(Repr::LinkDown.into());
        }
        for (route, ready) in routes.iter_mut().zip(ready) {
            // Spread the load, then prefer nodes that reach their cluster.
            let mut order: Vec<(Arc<Peer>, bool)> = route.candidates.drain(..).zip(ready).collect();
            let len = order.len() as u64;
            order.rotate_left((turn % len) as usize);
            order.sort_by_key(|(_, node_ready)| !node_ready);
            route.candidates = order.into_iter().map(|(peer, _)| peer).collect();
        }
        Ok(routes)
    }

    /// The links that may carry a message about `connection`, best first.
    fn connection_route(&self, connection: &str) -> Result<Vec<Arc<Peer>>> {
        let views = self.views();
        let up: Vec<&(Arc<Peer>, View)> = views
            .iter()
            .filter(|(_, view)| view.status == LinkStatus::Ready)
            .collect();
        if up.is_empty() {
            return Err(Repr::LinkDown.into());
        }
        let names_node =
            |view: &View| !view.node_id.is_empty() && connection.starts_with(&view.node_id);
        let mut route: Vec<Arc<Peer>> = Vec::new();
        if let Some(home) = self.home(connection)
            && home.view().status == LinkStatus::Ready
        {
            route.push(home);
        }
        let mut direct: Vec<&(Arc<Peer>, View)> = up
            .iter()
            .copied()
            .filter(|(_, view)| names_node(view))
            .collect();
        direct.sort_by_key(|(_, view)| !view.node_ready);
        route.extend(direct.into_iter().map(|(peer, _)| peer.clone()));
        // The node's cluster, if any link (even a down one) told it.
        let node_cluster = views
            .iter()
            .find(|(_, view)| names_node(view))
            .map(|(_, view)| view.cluster.clone());
        let mut via_bus: Vec<&(Arc<Peer>, View)> = up
            .iter()
            .copied()
            .filter(|(_, view)| {
                !view.cluster.is_empty()
                    && node_cluster
                        .as_ref()
                        .is_none_or(|cluster| *cluster == view.cluster)
            })
            .collect();
        via_bus.sort_by_key(|(_, view)| !view.node_ready);
        route.extend(via_bus.into_iter().map(|(peer, _)| peer.clone()));
        if route.is_empty() {
            let first = Group::of(&up[0].0, &up[0].1);
            if up.iter().all(|(peer, view)| Group::of(peer, view) == first) {
                // One node or cluster: it is the only one that can answer.
                route.extend(up.iter().map(|(peer, _)| peer.clone()));
            }
        }
        dedup(&mut route);
        if !route.is_empty() {
            return Ok(route);
        }
        let node = connection.get(..6).unwrap_or(connection);
        if views.iter().any(|(_, view)| names_node(view)) {
            return Err(Error::from(Repr::LinkDown)
                .at(format!("node '{node}' holding connection '{connection}'")));
        }
        Err(Repr::NotFound(format!(
            "connection '{connection}': no link reaches its node '{node}'"
        ))
        .into())
    }

    /// Sends a message to its audience.
    pub(crate) async fn send(&self, send: Send) -> Result<()> {
        let target = send.audience.as_ref().and_then(|a| a.target.clone());
        match target {
            Some(Audience::Connection(connection)) => {
                let route = self.connection_route(&connection)?;
                let kind = Kind::Send(send);
                try_each(route, |peer| {
                    let kind = kind.clone();
                    async move { peer.outbox.send(kind).await }
                })
                .await
            }
            Some(Audience::Connections(ids)) => self.send_connections(send, ids).await,
            _ => self.send_everywhere(send).await,
        }
    }

    /// Sends once per cluster, plus a local-only copy to each node of the
    /// cluster that cannot reach it (so its clients keep receiving while
    /// its bus is down; a node that is back on its bus drops the copy).
    async fn send_everywhere(&self, send: Send) -> Result<()> {
        let kind = Kind::Send(send.clone());
        let routes = self.cluster_routes(audience_key(&kind))?;
        let many = routes.len() > 1;
        let mut failure = None;
        for route in routes {
            let (mut candidates, isolated): (Vec<_>, Vec<_>) = match route.group {
                Group::Cluster(_) => route
                    .candidates
                    .into_iter()
                    .partition(|peer| peer.view().node_ready),
                _ => (route.candidates, Vec::new()),
            };
            if !isolated.is_empty() {
                let copy = Kind::Send(Send {
                    local_only: true,
                    ..send.clone()
                });
                for peer in &isolated {
                    // Best effort: the node is already cut off from its
                    // cluster; a failure here is reported by its link.
                    let _ = peer.outbox.send(copy.clone()).await;
                }
                if candidates.is_empty() {
                    continue; // every node is isolated: the copies are all
                }
            }
            let kind = kind.clone();
            let sent = try_each(std::mem::take(&mut candidates), |peer| {
                let kind = kind.clone();
                async move { peer.outbox.send(kind).await }
            })
            .await;
            if let Err(error) = sent {
                failure.get_or_insert(place(error, many, &route.group));
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Sends to several connections: the whole list once per cluster, and
    /// to each standalone node the ids it issued.
    async fn send_connections(&self, send: Send, ids: IdList) -> Result<()> {
        let routes = self.cluster_routes(audience_key(&Kind::Send(send.clone())))?;
        if routes.len() == 1 {
            let route = routes.into_iter().next().expect("one route");
            let kind = Kind::Send(send);
            return try_each(route.candidates, |peer| {
                let kind = kind.clone();
                async move { peer.outbox.send(kind).await }
            })
            .await;
        }
        let any_cluster = routes.iter().any(|r| matches!(r.group, Group::Cluster(_)));
        let mut covered: HashSet<&str> = HashSet::new();
        let mut failure = None;
        for route in &routes {
            let subset: Vec<String> = match &route.group {
                Group::Cluster(_) => ids.ids.clone(),
                Group::Node(_) | Group::Anonymous(_) => {
                    let node = match &route.group {
                        Group::Node(node) => node.as_str(),
                        _ => "",
                    };
                    let mine: Vec<String> = ids
                        .ids
                        .iter()
                        .filter(|id| {
                            (!node.is_empty() && id.starts_with(node))
                                || self.home(id).is_some_and(|home| {
                                    route.candidates.iter().any(|p| Arc::ptr_eq(p, &home))
                                })
                        })
                        .cloned()
                        .collect();
                    covered.extend(
                        ids.ids
                            .iter()
                            .filter(|id| mine.contains(id))
                            .map(String::as_str),
                    );
                    mine
                }
            };
            if subset.is_empty() {
                continue;
            }
            let mut part = send.clone();
            if let Some(audience) = part.audience.as_mut() {
                audience.target = Some(Audience::Connections(IdList { ids: subset }));
            }
            let kind = Kind::Send(part);
            let sent = try_each(route.candidates.clone(), |peer| {
                let kind = kind.clone();
                async move { peer.outbox.send(kind).await }
            })
            .await;
            if let Err(error) = sent {
                failure.get_or_insert(place(error, true, &route.group));
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        let missed: Vec<&str> = ids
            .ids
            .iter()
            .map(String::as_str)
            .filter(|id| !covered.contains(id))
            .collect();
        if any_cluster || missed.is_empty() {
            Ok(())
        } else {
            Err(Repr::NotFound(format!(
                "no link reaches the nodes of connections {missed:?}; sent to the others"
            ))
            .into())
        }
    }

    /// An acknowledged request about one connection.
    pub(crate) async fn request_for_connection(
        &self,
        connection: &str,
        build: impl Fn(u64) -> Kind,
    ) -> Result<AckReply> {
        let route = self.connection_route(connection)?;
        let build = &build;
        try_each(
            route,
            |peer| async move { peer.outbox.request(build).await },
        )
        .await
    }

    /// An acknowledged request sent once per cluster; every answer, each
    /// with the cluster or node it came from.
    pub(crate) async fn request_everywhere(
        &self,
        build: impl Fn(u64) -> Kind,
    ) -> Result<Vec<(String, Result<AckReply>)>> {
        let routes = self.cluster_routes(self.turn.fetch_add(1, Ordering::Relaxed))?;
        let many = routes.len() > 1;
        let build = &build;
        let asks = routes.into_iter().map(|route| async move {
            let reply = try_each(route.candidates, |peer| async move {
                peer.outbox.request(build).await
            })
            .await;
            let label = if many {
                route.group.label()
            } else {
                String::new()
            };
            (label, reply)
        });
        Ok(futures_util::future::join_all(asks).await)
    }

    /// Invokes a method on one client and waits for its answer.
    pub(crate) async fn invoke_client(
        &self,
        connection: &str,
        target: &str,
        arguments: Payload,
        timeout: Duration,
    ) -> Result<client_result::Outcome> {
        let route = self.connection_route(connection)?;
        // Only before it was queued: a lost link may have delivered it.
        let mut last = None;
        for peer in route {
            match peer
                .outbox
                .invoke_client(connection, target, arguments.clone(), timeout)
                .await
            {
                Err(error) if error.kind() == ErrorKind::LinkDown => last = Some(error),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Repr::LinkDown.into()))
    }
}

/// Picks the link of a cluster for a send: the same for the same hub and
/// audience, so its messages stay in order.
fn audience_key(kind: &Kind) -> u64 {
    let mut hasher = DefaultHasher::new();
    if let Kind::Send(send) = kind {
        send.hub.to_lowercase().hash(&mut hasher);
        if let Some(audience) = &send.audience {
            audience.encode_to_vec().hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// Success if every cluster succeeded or said not found while another
/// succeeded; not found if all said so; otherwise the first error, naming
/// where it happened.
pub(crate) fn combine_changes(
    replies: Vec<(String, Result<AckReply>)>,
    subject: impl Fn() -> String,
) -> Result<()> {
    let mut not_found = None;
    let mut ok = false;
    for (label, reply) in replies {
        match reply.and_then(|reply| reply.into_result(&subject)) {
            Ok(()) => ok = true,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                not_found.get_or_insert(error);
            }
            Err(error) => return Err(labelled(error, label)),
        }
    }
    match not_found {
        Some(error) if !ok => Err(error),
        _ => Ok(()),
    }
}

/// Exists if any cluster says so; otherwise the first error, else no.
pub(crate) fn combine_exists(replies: Vec<(String, Result<AckReply>)>) -> Result<bool> {
    let mut failure = None;
    for (label, reply) in replies {
        match reply.and_then(AckReply::exists) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(error) => {
                failure.get_or_insert(labelled(error, label));
            }
        }
    }
    failure.map_or(Ok(false), Err)
}

fn labelled(error: Error, label: String) -> Error {
    if label.is_empty() {
        error
    } else {
        error.at(label)
    }
}

fn place(error: Error, many: bool, group: &Group) -> Error {
    if many { error.at(group.label()) } else { error }
}

/// Tries each link in turn while the message could not be queued on it.
async fn try_each<T, F, Fut>(route: Vec<Arc<Peer>>, mut attempt: F) -> Result<T>
where
    F: FnMut(Arc<Peer>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut last = None;
    for peer in route {
        match attempt(peer).await {
            Err(error) if matches!(error.kind(), ErrorKind::LinkDown | ErrorKind::LinkLost) => {
                last = Some(error);
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Repr::LinkDown.into()))
}

fn dedup(route: &mut Vec<Arc<Peer>>) {
    let mut seen: Vec<*const Peer> = Vec::new();
    route.retain(|peer| {
        let ptr = Arc::as_ptr(peer);
        if seen.contains(&ptr) {
            false
        } else {
            seen.push(ptr);
            true
        }
    });
}
