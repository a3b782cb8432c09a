//! User groups in a cluster: stored in Redis, applied by every node holding
//! the user, loaded by a node when the user's first connection arrives.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchboard_proto::{self as pb, ack::Status, bus::v1 as pb_bus};

use super::super::{Outcome, channels, ops};
use super::{Inner, now_ms};

/// Adds (ARGV[1] = 1) or removes a user's group (ARGV[2], expiring at
/// ARGV[3] Unix ms, 0 = never), then makes the hash live as long as its
/// longest membership, so memberships with a TTL leave nothing behind.
const STORE_USER_GROUP: &str = r"
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[2])
end
local last = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local ms = tonumber(v)
  if ms == 0 then
    redis.call('PERSIST', KEYS[1])
    return 1
  end
  if ms > last then last = ms end
end
if last > 0 then redis.call('PEXPIREAT', KEYS[1], last) end
return 1
";

/// The local deadline of a membership ending at `expires_at_ms` (Unix ms):
/// `Some(None)` for none, `None` when already past.
fn deadline(expires_at_ms: u64) -> Option<Option<Instant>> {
    if expires_at_ms == 0 {
        return Some(None);
    }
    let left = expires_at_ms.checked_sub(now_ms()).filter(|ms| *ms > 0)?;
    Some(Some(Instant::now() + Duration::from_millis(left)))
}

impl Inner {
    /// A user-group change: stored in Redis for nodes where the user
    /// connects later, then applied by every node holding the user (this
    /// one included); answered once they all applied it.
    pub(super) async fn user_group(
        self: &Arc<Self>,
        hub: &str,
        user: &str,
        add: bool,
        change: pb::GroupChange,
    ) -> Outcome {
        if !self.connected.load(Ordering::Acquire) {
            // Still cover this node's connections.
            let applied = self.apply_user_group(&change, hub, user, add);
            let scope = if applied {
                "applied to this node's connections only"
            } else {
                "not applied"
            };
            return Err((
                Status::Error,
                format!("user group change {scope}: {}", self.not_connected()),
            ));
        }
        let ttl = change.ttl_seconds;
        let expires_at_ms = if ttl > 0 {
            now_ms() + u64::from(ttl) * 1000
        } else {
            0
        };
        let key = channels::user_groups(&self.prefix, hub, user);
        let mut store = ::redis::cmd("EVAL");
        store
            .arg(STORE_USER_GROUP)
            .arg(1)
            .arg(&key)
            .arg(if add { "1" } else { "0" })
            .arg(&change.group)
            .arg(expires_at_ms);
        self.execute(key, store)
            .await
            .map_err(|(s, e)| (s, format!("user group change not stored: {e}")))?;
        let channel = channels::user(&self.prefix, hub, user);
        let (receivers, waiting) = self
            .ask(channel, pb_bus::request::Kind::GroupChange(change))
            .await?;
        self.all_answer(receivers, waiting).await
    }

    /// Applies a user-group change to this node, if it holds the user (only
    /// users connected here are cached; the cache is loaded from Redis
    /// when the user's first connection arrives). True when applied.
    pub(super) fn apply_user_group(
        &self,
        change: &pb::GroupChange,
        hub: &str,
        user: &str,
        add: bool,
    ) -> bool {
        if !self.router.has_user(hub, user) {
            return false;
        }
        let deadline = ops::ttl_deadline(change.ttl_seconds);
        self.router
            .user_group(hub, user, &change.group, add, deadline);
        true
    }

    /// Loads the stored groups of a user whose first connection arrived here.
    pub(super) async fn load_user_groups(
        &self,
        conn: &mut super::conn::Conn,
        hub: &str,
        user: &str,
    ) -> ::redis::RedisResult<()> {
        let key = channels::user_groups(&self.prefix, hub, user);
        let groups: HashMap<String, u64> =
            ::redis::cmd("HGETALL").arg(&key).query_async(conn).await?;
        for (group, expires_at_ms) in groups {
            if let Some(expires) = deadline(expires_at_ms) {
                self.router.user_group(hub, user, &group, true, expires);
            }
        }
        Ok(())
    }
}
