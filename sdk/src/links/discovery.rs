//! Which links exist: one per server endpoint, or with DNS discovery one per
//! address each endpoint's host resolves to, re-resolved periodically.
//! Links to new addresses are opened; links to vanished ones are closed
//! gracefully (running handlers get the shutdown grace).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Links;
use crate::connection_string::ConnectionString;
use crate::dispatch::Dispatcher;
use crate::link::{Link, Peer, Settings, Target, stopped};

/// Default time between DNS look-ups of the server endpoints' host names.
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Resolves a host name to the addresses of the proxy replicas behind it.
///
/// The default uses the system resolver (`getaddrinfo`); supply your own
/// with [`ServerBuilder::resolver`](crate::ServerBuilder::resolver), e.g. to
/// query a service registry.
pub trait Resolve: Send + Sync + 'static {
    /// Every address `host` resolves to, with `port` unless the resolver
    /// knows better. An error keeps the links already open for the host.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
}

/// The system resolver.
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// What to link to.
pub(crate) struct Plan {
    pub endpoints: Vec<String>,
    /// Re-resolve host names this often; `None`: dial endpoints as given.
    pub dns: Option<Duration>,
    pub resolver: Arc<dyn Resolve>,
}

/// Everything needed to start a link task.
pub(crate) struct Spawner {
    pub conn: ConnectionString,
    pub server_id: String,
    pub settings: Settings,
    pub ack_timeout: Duration,
    pub dispatcher: Arc<Dispatcher>,
    pub links: Arc<Links>,
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Spawner {
    fn spawn(&self, target: Target) -> Running {
        let peer = Arc::new(Peer::new(target, self.ack_timeout));
        self.links.add(peer.clone());
        let link = Arc::new(Link {
            conn: self.conn.clone(),
            server_id: self.server_id.clone(),
            settings: self.settings.clone(),
            dispatcher: self.dispatcher.clone(),
            links: self.links.clone(),
            peer: peer.clone(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let links = self.links.clone();
        let task = tokio::spawn(async move {
            link.run(stop_rx).await;
            links.remove(&peer);
        });
        Running { stop, task }
    }
}

/// Keeps the links matching the plan until `shutdown`, then closes them
/// all and waits for them.
pub(crate) async fn supervise(plan: Plan, spawner: Spawner, mut shutdown: watch::Receiver<bool>) {
    let mut running: HashMap<Target, Running> = HashMap::new();
    let mut closing: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let (wanted, complete) = wanted(&plan, &running).await;
        let gone: Vec<Target> = running
            .keys()
            .filter(|target| !wanted.contains(target))
            .cloned()
            .collect();
        for target in gone {
            let Some(link) = running.remove(&target) else {
                continue;
            };
            tracing::info!(address = %target.address, endpoint = %target.endpoint, "proxy address gone; closing its link");
            link.stop.send_replace(true);
            closing.push(link.task);
        }
        for target in wanted {
            if let Entry::Vacant(slot) = running.entry(target) {
                let target = slot.key();
                tracing::info!(address = %target.address, endpoint = %target.endpoint, "linking to a proxy");
                let link = spawner.spawn(target.clone());
                slot.insert(link);
            }
        }
        closing.retain(|task| !task.is_finished());
        let Some(interval) = plan.dns else {
            stopped(&mut shutdown).await;
            break;
        };
        // An endpoint that could not be resolved yet is retried sooner.
        let wait = if complete {
            interval
        } else {
            interval.min(spawner.settings.reconnect_max)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopped(&mut shutdown) => break,
        }
    }
    for link in running.values() {
        link.stop.send_replace(true);
    }
    closing.extend(running.into_values().map(|link| link.task));
    for task in closing {
        let _ = task.await;
    }
    spawner.links.stopped();
}

/// The targets the plan asks for now, and whether every endpoint resolved.
/// An endpoint whose host cannot be resolved keeps its current links.
async fn wanted(plan: &Plan, running: &HashMap<Target, Running>) -> (Vec<Target>, bool) {
    let mut targets: Vec<Target> = Vec::new();
    let mut complete = true;
    for endpoint in &plan.endpoints {
        let parts = plan.dns.and_then(|_| UrlParts::named_host(endpoint));
        let Some(parts) = parts else {
            targets.push(Target::direct(endpoint));
            continue;
        };
        match plan.resolver.resolve(&parts.host, parts.port).await {
            Ok(addresses) => {
                if addresses.is_empty() {
                    tracing::warn!(%endpoint, "the server endpoint's host resolves to no address");
                }
                targets.extend(addresses.into_iter().map(|address| Target {
                    endpoint: endpoint.clone(),
                    address: parts.with_address(address),
                }));
            }
            Err(error) => {
                tracing::warn!(%endpoint, %error, "cannot resolve the server endpoint's host; keeping its links");
                let kept: Vec<Target> = running
                    .keys()
                    .filter(|target| target.endpoint == *endpoint)
                    .cloned()
                    .collect();
                complete &= !kept.is_empty();
                targets.extend(kept);
            }
        }
    }
    let mut unique: Vec<Target> = Vec::with_capacity(targets.len());
    for target in targets {
        if !unique.contains(&target) {
            unique.push(target);
        }
    }
    (unique, complete)
}

/// A server endpoint URL taken apart around its host.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts {
    scheme: String,
    host: String,
    port: u16,
    /// Path and anything after the authority.
    rest: String,
}

impl UrlParts {
    /// The parts of a URL whose host is a name; `None` for an address
    /// literal, which needs no resolving.
    fn named_host(url: &str) -> Option<Self> {
        let (scheme, after) = url.split_once("://")?;
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        if authority.starts_with('[') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, if scheme == "https" { 443 } else { 80 }),
        };
        if host.parse::<IpAddr>().is_ok() {
            return None;
        }
        Some(Self {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            rest: rest.to_owned(),
        })
    }

    fn with_address(&self, address: SocketAddr) -> String {
        format!("{}://{address}{}", self.scheme, self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_names_are_resolved() {
        let parts = UrlParts::named_host("http://proxy.svc:7070/base").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                scheme: "http".into(),
                host: "proxy.svc".into(),
                port: 7070,
                rest: "/base".into(),
            }
        );
        assert_eq!(
            parts.with_address("[fd00::5]:7070".parse().unwrap()),
            "http://[fd00::5]:7070/base"
        );
        assert_eq!(UrlParts::named_host("https://proxy").unwrap().port, 443);
        assert_eq!(UrlParts::named_host("http://10.1.2.3:7070"), None);
        assert_eq!(UrlParts::named_host("http://[::1]:7070"), None);
    }
}
