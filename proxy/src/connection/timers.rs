//! The deadlines of one served socket (keep-alive ping, client timeout, the
//! stateful-reconnect Ack) behind a single timer.
//!
//! A tokio `Sleep` costs about 112 bytes inside every connection's task; a
//! deadline costs an `Instant`. The transport keeps one `Sleep` armed at
//! [`Timers::next`] and asks [`Timers::expire`] what is due when it fires.
//! Moving a deadline later (a write, a read) needs no re-arming: the timer
//! fires early, nothing is due, and it is armed again at the new deadline,
//! at most once per interval. Sans-IO: callers pass the current time.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;

/// How long after a numbered client message an Ack is written, so a burst
/// is acknowledged once.
pub const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// See the module docs.
#[derive(Debug)]
pub struct Timers {
    keep_alive_interval: Duration,
    client_timeout: Duration,
    /// When to ping the client if nothing else was written.
    keep_alive: Instant,
    /// When to give up on a client that sent nothing.
    timeout: Instant,
    /// When to write an Ack owed to the client, if one is.
    ack: Option<Instant>,
}

/// What [`Timers::expire`] found due.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Write the Ack owed.
    pub ack: bool,
    /// Write a Ping.
    pub keep_alive: bool,
    /// The client sent nothing for the client timeout.
    pub client_timeout: bool,
}

impl Timers {
    /// The configured keep-alive interval and client timeout, both starting
    /// `now`.
    pub fn for_config(now: Instant, config: &Config) -> Self {
        Self::new(now, config.keep_alive_interval, config.client_timeout)
    }

    /// Both intervals start now.
    pub fn new(now: Instant, keep_alive_interval: Duration, client_timeout: Duration) -> Self {
        Self {
            keep_alive_interval,
            client_timeout,
            keep_alive: now + keep_alive_interval,
            timeout: now + client_timeout,
            ack: None,
        }
    }

    /// The earliest deadline: where the transport's one timer is armed.
    pub fn next(&self) -> Instant {
        let first = self.keep_alive.min(self.timeout);
        self.ack.map_or(first, |ack| ack.min(first))
    }

    /// Something was written to the client: the keep-alive starts over.
    pub fn wrote(&mut self, now: Instant) {
        self.keep_alive = now + self.keep_alive_interval;
    }

    /// Something was read from the client: the client timeout starts over.
    pub fn received(&mut self, now: Instant) {
        self.timeout = now + self.client_timeout;
    }

    /// An Ack is owed: it is written [`ACK_INTERVAL`] from now, unless one
    /// is already scheduled. True when that moved [`next`](Self::next)
    /// earlier, so the timer must be re-armed.
    pub fn owe_ack(&mut self, now: Instant) -> bool {
        if self.ack.is_some() {
            return false;
        }
        let at = now + ACK_INTERVAL;
        let earlier = at < self.next();
        self.ack = Some(at);
        earlier
    }

    /// Takes what is due at `now`. A due keep-alive or client timeout starts
    /// over, as the transport pings (or closes) right away.
    pub fn expire(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        if self.ack.is_some_and(|at| at <= now) {
            self.ack = None;
            due.ack = true;
        }
        if self.keep_alive <= now {
            self.wrote(now);
            due.keep_alive = true;
        }
        if self.timeout <= now {
            self.received(now);
            due.client_timeout = true;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_ALIVE: Duration = Duration::from_secs(15);
    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn keep_alive_and_timeout_fall_due_at_their_intervals() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, KEEP_ALIVE, TIMEOUT);
        assert_eq!(t.next(), t0 + KEEP_ALIVE);
        assert_eq!(t.expire(t0 + KEEP_ALIVE / 2), Due::default());
        let due = t.expire(t0 + KEEP_ALIVE);
        assert!(due.keep_alive && !due.client_timeout && !due.ack);
        assert_eq!(t.next(), t0 + TIMEOUT);
        let due = t.expire(t0 + TIMEOUT);
        assert!(due.keep_alive && due.client_timeout);
    }

    #[test]
    fn writes_and_reads_push_their_deadline_later() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, KEEP_ALIVE, TIMEOUT);
        let t1 = t0 + Duration::from_secs(10);
        t.wrote(t1);
        t.received(t1);
        // The timer armed at the old deadline fires early: nothing is due.
        assert_eq!(t.expire(t0 + KEEP_ALIVE), Due::default());
        assert_eq!(t.next(), t1 + KEEP_ALIVE);
        let due = t.expire(t1 + TIMEOUT);
        assert!(due.client_timeout);
    }

    #[test]
    fn an_owed_ack_is_scheduled_once_and_moves_the_timer_earlier() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, KEEP_ALIVE, TIMEOUT);
        assert!(t.owe_ack(t0));
        assert_eq!(t.next(), t0 + ACK_INTERVAL);
        // A second message before the Ack goes out schedules nothing new.
        assert!(!t.owe_ack(t0 + ACK_INTERVAL / 2));
        assert_eq!(t.expire(t0 + ACK_INTERVAL / 2), Due::default());
        let due = t.expire(t0 + ACK_INTERVAL);
        assert!(due.ack && !due.keep_alive);
        assert_eq!(t.next(), t0 + KEEP_ALIVE);
        // An Ack later than the next deadline needs no re-arming.
        let mut short = Timers::new(t0, Duration::from_millis(100), TIMEOUT);
        assert!(!short.owe_ack(t0));
    }
}
