//! This node's connections to Redis: connecting with backoff, subscribing by
//! interest, receiving, and noticing when Redis goes away.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::super::{Readiness, channels};
use super::conn::{Conn, Subscriber};
use super::{Inner, stopping};
use crate::router::Interest;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Channels named in one SUBSCRIBE when (re)subscribing everything.
const SUBSCRIBE_BATCH: usize = 500;

struct Connected {
    conn: Conn,
    subscriber: Subscriber,
}

/// Keeps this node connected and subscribed until `stopped`.
pub(super) async fn supervise(
    inner: Arc<Inner>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut down_since = Instant::now();
    let mut first = true;
    loop {
        let attempt = tokio::select! {
            _ = stopping(&mut stopped) => return,
            c = connect(&inner) => c,
        };
        let mut c = match attempt {
            Ok(c) => c,
            Err(e) => {
                set_down(&inner, format!("cannot reach Redis at {}: {e}", inner.url));
                tokio::select! {
                    _ = stopping(&mut stopped) => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        set_up(&inner, c.conn.clone(), down_since.elapsed(), first);
        first = false;
        backoff = MIN_BACKOFF;
        let why = loop {
            tokio::select! {
                _ = stopping(&mut stopped) => return,
                message = c.subscriber.next() => match message {
                    Some(payload) => inner.receive(&payload),
                    None => break "the connection closed".to_owned(),
                },
                Some(i) = interest.recv() => {
                    if let Err(e) = reconcile(&inner, &mut c, i).await {
                        break e.to_string();
                    }
                }
            }
        };
        down_since = Instant::now();
        set_down(
            &inner,
            format!("lost the connection to Redis at {}: {why}", inner.url),
        );
    }
}

/// Connects both connections and subscribes to everything this node holds.
async fn connect(inner: &Inner) -> redis::RedisResult<Connected> {
    let (conn, subscriber) = inner.target.connect().await?;
    let mut c = Connected { conn, subscriber };
    let mut wanted = vec![channels::node(&inner.prefix, inner.node.as_str())];
    let interests = inner.router.interests();
    wanted.extend(interests.iter().map(|i| channels::of(&inner.prefix, i)));
    for chunk in wanted.chunks(SUBSCRIBE_BATCH) {
        c.subscriber.subscribe(chunk).await?;
    }
    inner.subscribed.lock().extend(wanted);
    inner.subscriptions.notify_waiters();
    for i in &interests {
        if let Interest::User(hub, user) = i {
            inner.load_user_groups(&mut c.conn, hub, user).await?;
        }
    }
    Ok(c)
}

/// Subscribes to what this node now holds and unsubscribes from what it
/// no longer does.
async fn reconcile(inner: &Inner, c: &mut Connected, interest: Interest) -> redis::RedisResult<()> {
    let channel = channels::of(&inner.prefix, &interest);
    let wanted = inner.router.holds(&interest);
    let subscribed = inner.subscribed.lock().contains(&channel);
    if wanted && !subscribed {
        c.subscriber
            .subscribe(std::slice::from_ref(&channel))
            .await?;
        if let Interest::User(hub, user) = &interest {
            inner.load_user_groups(&mut c.conn, hub, user).await?;
        }
        inner.subscribed.lock().insert(channel);
        inner.subscriptions.notify_waiters();
    } else if !wanted && subscribed {
        c.subscriber.unsubscribe(&channel).await?;
        inner.subscribed.lock().remove(&channel);
    }
    Ok(())
}

fn set_up(inner: &Inner, conn: Conn, gap: Duration, first: bool) {
    *inner.conn.lock() = Some(conn);
    inner.connected.store(true, Ordering::Release);
    inner.metrics.bus_connected.set(1);
    inner.readiness.send_replace(Readiness::ready());
    let lost = inner.lost.swap(0, Ordering::Relaxed);
    if first {
        tracing::info!(bus = %inner.url, cluster = %inner.prefix, node = %inner.node, "connected to the cluster bus");
    } else {
        inner.metrics.bus_reconnects.inc();
        tracing::warn!(
            bus = %inner.url,
            gap_ms = gap.as_millis() as u64,
            lost_outgoing = lost,
            "reconnected to the cluster bus; {lost} messages to other nodes were dropped during the gap, and messages other nodes published meanwhile did not reach this node's clients"
        );
    }
}

fn set_down(inner: &Inner, reason: String) {
    *inner.conn.lock() = None;
    let was = inner.connected.swap(false, Ordering::AcqRel);
    inner.subscribed.lock().clear();
    inner.subscriptions.notify_waiters();
    inner.metrics.bus_connected.set(0);
    let changed = inner.readiness.send_if_modified(|r| {
        let changed = r.ready || r.reason != reason;
        *r = Readiness {
            ready: false,
            reason: reason.clone(),
        };
        changed
    });
    if was {
        tracing::warn!(bus = %inner.url, %reason, "disconnected from the cluster bus: local delivery continues, other nodes are unreachable until it reconnects");
    } else if changed {
        tracing::warn!(bus = %inner.url, %reason, "cluster bus not reachable: this node serves only its own clients and is not ready; retrying");
    }
}
