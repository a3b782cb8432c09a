//! Who is connected, in which groups, as which user — and fan-out to them.
//!
//! The router knows connections only by their [`Handle`]: it never touches a
//! socket. A send is encoded once per wire protocol before the router is
//! called; the router clones the shared frame into each target's outbox.
//!
//! It also keeps user groups (a user's current and future connections join a
//! group, maybe until a deadline), and reports [`Interest`] changes — a hub,
//! group or user gaining its first or losing its last local connection — so
//! a clustered bus can subscribe only to what this node holds.

pub mod frames;

use std::sync::Arc;
use std::time::Instant;

use hashbrown::{HashMap, HashSet};
use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::connection::handle::{Handle, Protocol};
use crate::connection::outbox::Frame;
use crate::ids::ConnectionId;

/// Who a send reaches, within one hub.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    All,
    Connection(&'a str),
    Connections(&'a [String]),
    Group(&'a str),
    Groups(&'a [String]),
    User(&'a str),
    Users(&'a [String]),
}

/// One message, encoded once for each protocol present among its targets.
pub struct Encoded<'a> {
    /// Produces the frame for a protocol, or `None` when the message cannot
    /// be expressed in it; called at most once per protocol.
    encode: &'a dyn Fn(Protocol) -> Option<Frame>,
    json: Option<Option<Frame>>,
    messagepack: Option<Option<Frame>>,
}

impl<'a> Encoded<'a> {
    pub fn new(encode: &'a dyn Fn(Protocol) -> Option<Frame>) -> Self {
        Self {
            encode,
            json: None,
            messagepack: None,
        }
    }

    fn frame(&mut self, protocol: Protocol) -> Option<Frame> {
        let encode = self.encode;
        let slot = match protocol {
            Protocol::Json => &mut self.json,
            Protocol::MessagePack => &mut self.messagepack,
        };
        slot.get_or_insert_with(|| encode(protocol)).clone()
    }
}

/// What a send did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued.
    pub delivered: usize,
    /// Targets whose outbox was full; they are being closed as slow consumers.
    pub overflowed: usize,
    /// Targets whose protocol cannot carry the message (a value with no form
    /// in that encoding).
    pub unencodable: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("connection '{0}' is not connected to this hub")]
pub struct NotFound(pub String);

struct Member {
    handle: Arc<Handle>,
    groups: Vec<Arc<str>>,
}

#[derive(Default)]
struct Hub {
    members: HashMap<ConnectionId, Member>,
    groups: HashMap<Arc<str>, HashSet<ConnectionId>>,
    users: HashMap<Arc<str>, HashSet<ConnectionId>>,
}

/// A group a user joined with all their connections.
struct UserGroup {
    group: Arc<str>,
    /// `None`: until removed.
    expires: Option<Instant>,
}

#[derive(Default)]
struct Tables {
    hubs: HashMap<Arc<str>, Hub>,
    by_id: HashMap<ConnectionId, Arc<Handle>>,
    /// Hub → user → groups; kept while the user has no connection too.
    user_groups: HashMap<Arc<str>, HashMap<Arc<str>, Vec<UserGroup>>>,
}

/// Something this node may need to hear about from other nodes: a hub, a
/// group or a user of a hub. Reported when its first local connection
/// arrives or its last one leaves; the receiver checks [`Router::holds`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Interest {
    Hub(Arc<str>),
    Group(Arc<str>, Arc<str>),
    User(Arc<str>, Arc<str>),
}

/// See the module docs.
#[derive(Default)]
pub struct Router {
    tables: RwLock<Tables>,
    interest: Option<mpsc::UnboundedSender<Interest>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// A router that reports [`Interest`] changes on `tx`, for a clustered
    /// bus. It keeps a user's groups only while it holds a connection of the
    /// user (the bus loads them when the first one arrives).
    pub fn with_interest(tx: mpsc::UnboundedSender<Interest>) -> Self {
        Self {
            tables: RwLock::default(),
            interest: Some(tx),
        }
    }

    fn changed(&self, interest: impl FnOnce() -> Interest) {
        if let Some(tx) = &self.interest {
            let _ = tx.send(interest());
        }
    }

    /// Registers a connection that finished its handshake; it joins the
    /// unexpired groups of its user.
    pub fn add(&self, handle: Arc<Handle>) {
        let mut t = self.tables.write();
        let t = &mut *t;
        let hub_name = handle.hub.clone();
        if !t.hubs.contains_key(&hub_name) {
            self.changed(|| Interest::Hub(hub_name.clone()));
        }
        let hub = t.hubs.entry(hub_name.clone()).or_default();
        hub.members.insert(
            handle.id.clone(),
            Member {
                handle: handle.clone(),
                groups: Vec::new(),
            },
        );
        if let Some(user) = &handle.user {
            let ids = hub.users.entry(user.clone()).or_default();
            if ids.is_empty() {
                self.changed(|| Interest::User(hub_name.clone(), user.clone()));
            }
            ids.insert(handle.id.clone());
            let now = Instant::now();
            let groups = t.user_groups.get(&hub_name).and_then(|u| u.get(user));
            for ug in groups.into_iter().flatten() {
                if ug.expires.is_none_or(|e| e > now) {
                    self.join(&hub_name, hub, &ug.group, handle.id.as_str());
                }
            }
        }
        t.by_id.insert(handle.id.clone(), handle);
    }

    /// Forgets a connection and its group memberships.
    pub fn remove(&self, handle: &Handle) {
        let mut t = self.tables.write();
        t.by_id.remove(&handle.id);
        let Some(hub) = t.hubs.get_mut(&handle.hub) else {
            return;
        };
        let Some(member) = hub.members.remove(&handle.id) else {
            return;
        };
        for g in &member.groups {
            if remove_from(&mut hub.groups, g, &handle.id) {
                self.changed(|| Interest::Group(handle.hub.clone(), g.clone()));
            }
        }
        let mut gone_user = None;
        if let Some(user) = &handle.user
            && remove_from(&mut hub.users, user, &handle.id)
        {
            self.changed(|| Interest::User(handle.hub.clone(), user.clone()));
            gone_user = Some(user);
        }
        if hub.members.is_empty() {
            t.hubs.remove(&handle.hub);
            self.changed(|| Interest::Hub(handle.hub.clone()));
        }
        // A clustered node stops hearing the user's group changes now; its
        // bus reloads them when the user connects here again.
        if let (Some(user), Some(_)) = (gone_user, &self.interest)
            && let Some(users) = t.user_groups.get_mut(&handle.hub)
        {
            users.remove(user);
            if users.is_empty() {
                t.user_groups.remove(&handle.hub);
            }
        }
    }

    /// Whether this node holds a connection of the hub, group or user.
    pub fn holds(&self, interest: &Interest) -> bool {
        let t = self.tables.read();
        match interest {
            Interest::Hub(h) => t.hubs.contains_key(h),
            Interest::Group(h, g) => t.hubs.get(h).is_some_and(|h| h.groups.contains_key(g)),
            Interest::User(h, u) => t.hubs.get(h).is_some_and(|h| h.users.contains_key(u)),
        }
    }

    /// Every hub, group and user this node holds a connection of.
    pub fn interests(&self) -> Vec<Interest> {
        let t = self.tables.read();
        let mut all = Vec::new();
        for (name, hub) in &t.hubs {
            all.push(Interest::Hub(name.clone()));
            all.extend(
                hub.groups
                    .keys()
                    .map(|g| Interest::Group(name.clone(), g.clone())),
            );
            all.extend(
                hub.users
                    .keys()
                    .map(|u| Interest::User(name.clone(), u.clone())),
            );
        }
        all
    }

    /// Adds `id` to `group` within `hub`; reports a group new to this node.
    fn join(&self, hub_name: &Arc<str>, hub: &mut Hub, group: &str, id: &str) -> bool {
        let Some((key, member)) = hub.members.get_key_value_mut(id) else {
            return false;
        };
        if member.groups.iter().any(|g| &**g == group) {
            return true;
        }
        let name: Arc<str> = match hub.groups.get_key_value(group) {
            Some((name, _)) => name.clone(), // share one allocation per group name
            None => {
                let name: Arc<str> = group.into();
                self.changed(|| Interest::Group(hub_name.clone(), name.clone()));
                name
            }
        };
        member.groups.push(name.clone());
        hub.groups.entry(name).or_default().insert(key.clone());
        true
    }

    /// Records that `user`'s current and future connections in `hub` are in
    /// `group` (until `expires`, if given), or no longer are, and applies it
    /// to the user's current connections; returns how many changed.
    pub fn user_group(
        &self,
        hub: &str,
        user: &str,
        group: &str,
        add: bool,
        expires: Option<Instant>,
    ) -> usize {
        {
            let mut t = self.tables.write();
            let users = t.user_groups.entry_ref(hub).or_default();
            if add {
                let groups = users.entry_ref(user).or_default();
                match groups.iter_mut().find(|g| &*g.group == group) {
                    Some(g) => g.expires = expires,
                    None => groups.push(UserGroup {
                        group: group.into(),
                        expires,
                    }),
                }
            } else if let Some(groups) = users.get_mut(user) {
                groups.retain(|g| &*g.group != group);
                if groups.is_empty() {
                    users.remove(user);
                }
            }
            if users.is_empty() {
                t.user_groups.remove(hub);
            }
        }
        self.group_change_user(hub, group, user, add)
    }

    /// Ends user-group memberships past their deadline: the user's
    /// connections leave the group. Returns how many memberships ended.
    pub fn expire_user_groups(&self, now: Instant) -> usize {
        let mut expired: Vec<(Arc<str>, Arc<str>, Arc<str>)> = Vec::new();
        {
            let mut t = self.tables.write();
            for (hub, users) in t.user_groups.iter_mut() {
                for (user, groups) in users.iter_mut() {
                    groups.retain(|g| {
                        let keep = g.expires.is_none_or(|e| e > now);
                        if !keep {
                            expired.push((hub.clone(), user.clone(), g.group.clone()));
                        }
                        keep
                    });
                }
                users.retain(|_, groups| !groups.is_empty());
            }
            t.user_groups.retain(|_, users| !users.is_empty());
        }
        for (hub, user, group) in &expired {
            self.group_change_user(hub, group, user, false);
        }
        expired.len()
    }

    /// A connection by id, in any hub.
    pub fn get(&self, id: &str) -> Option<Arc<Handle>> {
        self.tables.read().by_id.get(id).cloned()
    }

    /// Every connection of a hub.
    pub fn hub_connections(&self, hub: &str) -> Vec<Arc<Handle>> {
        let t = self.tables.read();
        t.hubs
            .get(hub)
            .map(|h| h.members.values().map(|m| m.handle.clone()).collect())
            .unwrap_or_default()
    }

    /// Every connection.
    pub fn all_connections(&self) -> Vec<Arc<Handle>> {
        self.tables.read().by_id.values().cloned().collect()
    }

    pub fn connection_count(&self) -> usize {
        self.tables.read().by_id.len()
    }

    /// Adds a connection to a group. Idempotent.
    pub fn group_add(&self, hub: &str, group: &str, id: &str) -> Result<(), NotFound> {
        let mut t = self.tables.write();
        let (name, hub) = t
            .hubs
            .get_key_value_mut(hub)
            .ok_or_else(|| NotFound(id.to_owned()))?;
        if self.join(name, hub, group, id) {
            Ok(())
        } else {
            Err(NotFound(id.to_owned()))
        }
    }

    /// Removes a connection from a group. Idempotent.
    pub fn group_remove(&self, hub: &str, group: &str, id: &str) -> Result<(), NotFound> {
        let mut t = self.tables.write();
        let (name, hub) = t
            .hubs
            .get_key_value_mut(hub)
            .ok_or_else(|| NotFound(id.to_owned()))?;
        let member = hub
            .members
            .get_mut(id)
            .ok_or_else(|| NotFound(id.to_owned()))?;
        member.groups.retain(|g| &**g != group);
        let id = ConnectionId::from(id);
        if remove_from(&mut hub.groups, group, &id) {
            self.changed(|| Interest::Group(name.clone(), group.into()));
        }
        Ok(())
    }

    /// Adds or removes every current connection of a user; returns how many.
    pub fn group_change_user(&self, hub: &str, group: &str, user: &str, add: bool) -> usize {
        let ids: Vec<ConnectionId> = {
            let t = self.tables.read();
            let ids = t.hubs.get(hub).and_then(|h| h.users.get(user));
            ids.map(|s| s.iter().cloned().collect()).unwrap_or_default()
        };
        ids.iter()
            .filter(|id| {
                if add {
                    self.group_add(hub, group, id.as_str())
                } else {
                    self.group_remove(hub, group, id.as_str())
                }
                .is_ok()
            })
            .count()
    }

    pub fn has_connection(&self, hub: &str, id: &str) -> bool {
        self.tables
            .read()
            .hubs
            .get(hub)
            .is_some_and(|h| h.members.contains_key(id))
    }

    pub fn has_group(&self, hub: &str, group: &str) -> bool {
        self.tables
            .read()
            .hubs
            .get(hub)
            .is_some_and(|h| h.groups.contains_key(group))
    }

    pub fn has_user(&self, hub: &str, user: &str) -> bool {
        self.tables
            .read()
            .hubs
            .get(hub)
            .is_some_and(|h| h.users.contains_key(user))
    }

    /// Queues `message` for every connection of `audience` in `hub` except
    /// `excluded`. Never waits: a full outbox closes that connection only.
    pub fn send(
        &self,
        hub: &str,
        audience: Audience<'_>,
        excluded: &[String],
        message: &mut Encoded<'_>,
    ) -> Delivery {
        let t = self.tables.read();
        let Some(hub) = t.hubs.get(hub) else {
            return Delivery::default();
        };
        let excluded = Exclusions::new(excluded);
        let mut delivery = Delivery::default();
        let mut deliver = |handle: &Handle| {
            if excluded.contains(handle.id.as_str()) {
                return;
            }
            match message
                .frame(handle.protocol)
                .map(|f| handle.outbox.push(f))
            {
                Some(Ok(())) => delivery.delivered += 1,
                Some(Err(_)) => delivery.overflowed += 1,
                None => delivery.unencodable += 1,
            }
        };
        let member = |id: &str| hub.members.get(id).map(|m| &*m.handle);
        match audience {
            Audience::All => hub.members.values().for_each(|m| deliver(&m.handle)),
            Audience::Connection(id) => member(id).into_iter().for_each(&mut deliver),
            Audience::Connections(ids) => {
                let mut seen = HashSet::with_capacity(ids.len());
                ids.iter()
                    .filter(|id| seen.insert(id.as_str()))
                    .filter_map(|id| member(id))
                    .for_each(&mut deliver)
            }
            Audience::Group(g) => {
                each_in(&hub.groups, std::slice::from_ref(&g), &member, &mut deliver)
            }
            Audience::Groups(gs) => each_in(&hub.groups, gs, &member, &mut deliver),
            Audience::User(u) => {
                each_in(&hub.users, std::slice::from_ref(&u), &member, &mut deliver)
            }
            Audience::Users(us) => each_in(&hub.users, us, &member, &mut deliver),
        }
        delivery
    }
}

/// Delivers once to each connection in any of the named sets.
fn each_in<'h, S: AsRef<str>>(
    sets: &'h HashMap<Arc<str>, HashSet<ConnectionId>>,
    names: &[S],
    member: &impl Fn(&str) -> Option<&'h Handle>,
    deliver: &mut impl FnMut(&Handle),
) {
    let mut seen: HashSet<&str> = HashSet::new();
    for set in names.iter().filter_map(|n| sets.get(n.as_ref())) {
        for id in set {
            if names.len() > 1 && !seen.insert(id.as_str()) {
                continue;
            }
            if let Some(h) = member(id.as_str()) {
                deliver(h);
            }
        }
    }
}

/// Removes `id` from the set `name`; true when that emptied (and dropped) it.
fn remove_from(
    sets: &mut HashMap<Arc<str>, HashSet<ConnectionId>>,
    name: &str,
    id: &ConnectionId,
) -> bool {
    if let Some(set) = sets.get_mut(name) {
        set.remove(id);
        if set.is_empty() {
            sets.remove(name);
            return true;
        }
    }
    false
}

/// Excluded ids: a linear scan for the usual handful, a set for long lists.
enum Exclusions<'a> {
    Few(&'a [String]),
    Many(HashSet<&'a str>),
}

impl<'a> Exclusions<'a> {
    fn new(ids: &'a [String]) -> Self {
        if ids.len() <= 8 {
            Self::Few(ids)
        } else {
            Self::Many(ids.iter().map(String::as_str).collect())
        }
    }

    fn contains(&self, id: &str) -> bool {
        match self {
            Self::Few(ids) => ids.iter().any(|e| e == id),
            Self::Many(set) => set.contains(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn conn(router: &Router, hub: &str, user: Option<&str>) -> Arc<Handle> {
        let h = Arc::new(Handle::new(
            ConnectionId::random(&crate::ids::NodeId::random()),
            hub.into(),
            user.map(Into::into),
            Protocol::Json,
            1 << 20,
            Default::default(),
        ));
        router.add(h.clone());
        h
    }

    fn received(h: &Handle) -> usize {
        let mut out = Vec::new();
        h.outbox.drain(&mut out);
        out.len()
    }

    fn send(r: &Router, hub: &str, a: Audience<'_>, excluded: &[String]) -> Delivery {
        let encode = |_: Protocol| Some(Frame::text(Bytes::from_static(b"{}")));
        r.send(hub, a, excluded, &mut Encoded::new(&encode))
    }

    #[test]
    fn audiences_reach_exactly_their_targets() {
        let r = Router::new();
        let a = conn(&r, "chat", Some("u1"));
        let b = conn(&r, "chat", Some("u1"));
        let c = conn(&r, "chat", Some("u2"));
        let other_hub = conn(&r, "news", None);
        r.group_add("chat", "g", a.id.as_str()).unwrap();
        r.group_add("chat", "g", c.id.as_str()).unwrap();
        r.group_add("chat", "h", c.id.as_str()).unwrap();

        assert_eq!(send(&r, "chat", Audience::All, &[]).delivered, 3);
        assert_eq!(
            (
                received(&a),
                received(&b),
                received(&c),
                received(&other_hub)
            ),
            (1, 1, 1, 0)
        );

        send(&r, "chat", Audience::User("u1"), &[a.id.to_string()]);
        assert_eq!((received(&a), received(&b), received(&c)), (0, 1, 0));

        let gs = vec!["g".to_owned(), "h".to_owned()];
        assert_eq!(
            send(&r, "chat", Audience::Groups(&gs), &[]).delivered,
            2,
            "c is in both groups but gets one copy"
        );
        assert_eq!((received(&a), received(&b), received(&c)), (1, 0, 1));

        let ids = vec![b.id.to_string(), b.id.to_string(), "nope".into()];
        assert_eq!(
            send(&r, "chat", Audience::Connections(&ids), &[]).delivered,
            1
        );
        assert_eq!(
            send(&r, "news", Audience::Connection(a.id.as_str()), &[]).delivered,
            0,
            "hubs are separate"
        );
    }

    #[test]
    fn remove_cleans_groups_and_users() {
        let r = Router::new();
        let a = conn(&r, "chat", Some("u1"));
        r.group_add("chat", "g", a.id.as_str()).unwrap();
        assert!(r.has_group("chat", "g") && r.has_user("chat", "u1"));
        r.remove(&a);
        assert!(!r.has_group("chat", "g") && !r.has_user("chat", "u1"));
        assert!(r.get(a.id.as_str()).is_none());
        assert_eq!(
            r.group_add("chat", "g", a.id.as_str()),
            Err(NotFound(a.id.to_string()))
        );
    }

    #[test]
    fn user_group_changes_cover_every_connection_of_the_user() {
        let r = Router::new();
        let a = conn(&r, "chat", Some("u1"));
        let b = conn(&r, "chat", Some("u1"));
        assert_eq!(r.group_change_user("chat", "g", "u1", true), 2);
        assert_eq!(send(&r, "chat", Audience::Group("g"), &[]).delivered, 2);
        assert_eq!(r.group_change_user("chat", "g", "u1", false), 2);
        assert_eq!(send(&r, "chat", Audience::Group("g"), &[]).delivered, 0);
        drop((a, b));
    }

    #[test]
    fn encodes_once_for_many_recipients() {
        let r = Router::new();
        for _ in 0..50 {
            conn(&r, "chat", None);
        }
        let calls = std::cell::Cell::new(0);
        let encode = |_: Protocol| {
            calls.set(calls.get() + 1);
            Some(Frame::text(Bytes::from_static(b"{}")))
        };
        assert_eq!(
            r.send("chat", Audience::All, &[], &mut Encoded::new(&encode))
                .delivered,
            50
        );
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn a_full_outbox_only_affects_its_owner() {
        let r = Router::new();
        let small = Arc::new(Handle::new(
            ConnectionId::random(&crate::ids::NodeId::random()),
            "chat".into(),
            None,
            Protocol::Json,
            3,
            Default::default(),
        ));
        r.add(small.clone());
        let big = conn(&r, "chat", None);
        let d = send(&r, "chat", Audience::All, &[]);
        assert_eq!(d.delivered, 2);
        let d = send(&r, "chat", Audience::All, &[]);
        assert_eq!((d.delivered, d.overflowed), (1, 1));
        assert!(small.outbox.is_closing());
        assert_eq!(received(&big), 2);
    }

    #[test]
    fn user_groups_cover_future_connections_until_they_expire() {
        let r = Router::new();
        let now = Instant::now();
        let a = conn(&r, "chat", Some("u1"));
        assert_eq!(r.user_group("chat", "u1", "g", true, None), 1);
        r.user_group(
            "chat",
            "u1",
            "short",
            true,
            Some(now + std::time::Duration::from_secs(5)),
        );
        r.remove(&a);
        // No connection of the user now; the next one still joins both.
        let b = conn(&r, "chat", Some("u1"));
        let other = conn(&r, "chat", Some("u2"));
        assert_eq!(send(&r, "chat", Audience::Group("g"), &[]).delivered, 1);
        assert_eq!(send(&r, "chat", Audience::Group("short"), &[]).delivered, 1);
        assert_eq!((received(&b), received(&other)), (2, 0));

        assert_eq!(
            r.expire_user_groups(now + std::time::Duration::from_secs(1)),
            0
        );
        assert_eq!(
            r.expire_user_groups(now + std::time::Duration::from_secs(6)),
            1
        );
        assert_eq!(send(&r, "chat", Audience::Group("short"), &[]).delivered, 0);
        assert!(!r.has_group("chat", "short"));

        assert_eq!(r.user_group("chat", "u1", "g", false, None), 1);
        let c = conn(&r, "chat", Some("u1"));
        assert_eq!(send(&r, "chat", Audience::Group("g"), &[]).delivered, 0);
        drop(c);
    }

    #[test]
    fn interest_is_reported_when_the_first_arrives_and_the_last_leaves() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Router::with_interest(tx);
        let mut seen = || {
            let mut v = Vec::new();
            while let Ok(i) = rx.try_recv() {
                v.push(i);
            }
            v
        };
        let hub = || Interest::Hub("chat".into());
        let user = || Interest::User("chat".into(), "u1".into());
        let group = || Interest::Group("chat".into(), "g".into());
        let a = conn(&r, "chat", Some("u1"));
        assert_eq!(seen(), vec![hub(), user()]);
        let b = conn(&r, "chat", Some("u1"));
        assert_eq!(seen(), vec![]);
        r.group_add("chat", "g", a.id.as_str()).unwrap();
        r.group_add("chat", "g", b.id.as_str()).unwrap();
        assert_eq!(seen(), vec![group()]);
        assert!(r.holds(&group()) && r.holds(&user()) && r.holds(&hub()));
        r.group_remove("chat", "g", a.id.as_str()).unwrap();
        r.remove(&a);
        assert_eq!(seen(), vec![]);
        r.user_group("chat", "u1", "x", true, None);
        assert_eq!(seen(), vec![Interest::Group("chat".into(), "x".into())]);
        r.remove(&b);
        assert_eq!(
            seen(),
            vec![
                group(),
                Interest::Group("chat".into(), "x".into()),
                user(),
                hub()
            ]
        );
        assert!(!r.holds(&group()) && !r.holds(&user()) && !r.holds(&hub()));
        assert!(r.interests().is_empty());
        // A clustered router forgot the user's groups with its last connection.
        let c = conn(&r, "chat", Some("u1"));
        assert!(!r.has_group("chat", "x"));
        r.remove(&c);
    }
}
