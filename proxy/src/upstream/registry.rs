//! Which links serve which hubs, and the choice of link for a new connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;
use parking_lot::RwLock;

use super::Link;

/// Live links by hub.
#[derive(Default)]
pub struct Links {
    by_hub: RwLock<HashMap<Arc<str>, Vec<Arc<Link>>>>,
    next_id: AtomicU64,
}

impl Links {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn add(&self, link: Arc<Link>) {
        let mut map = self.by_hub.write();
        for hub in &link.hubs {
            map.entry(hub.clone()).or_default().push(link.clone());
        }
    }

    pub fn remove(&self, link: &Arc<Link>) {
        let mut map = self.by_hub.write();
        for hub in &link.hubs {
            if let Some(list) = map.get_mut(hub) {
                list.retain(|l| !Arc::ptr_eq(l, link));
                if list.is_empty() {
                    map.remove(hub);
                }
            }
        }
    }

    /// The live link serving `hub` with the fewest connections.
    pub fn pick(&self, hub: &str) -> Option<Arc<Link>> {
        let map = self.by_hub.read();
        map.get(hub)?
            .iter()
            .filter(|l| !l.is_dead())
            .min_by_key(|l| l.load())
            .cloned()
    }

    /// Whether any live link serves `hub`.
    pub fn serves(&self, hub: &str) -> bool {
        self.by_hub
            .read()
            .get(hub)
            .is_some_and(|l| l.iter().any(|l| !l.is_dead()))
    }

    /// Every live link, once each.
    pub fn all(&self) -> Vec<Arc<Link>> {
        let map = self.by_hub.read();
        let mut all: Vec<Arc<Link>> = Vec::new();
        for link in map.values().flatten() {
            if !all.iter().any(|l| Arc::ptr_eq(l, link)) {
                all.push(link.clone());
            }
        }
        all
    }
}
