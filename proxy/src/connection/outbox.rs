//! The bounded outbound queue of one connection.
//!
//! Producers (fan-out, invocation results, the connection itself) push
//! already-encoded frames; the connection's writer drains everything queued
//! in one go. The bound is in bytes. A push that would exceed it clears the
//! queue and marks the connection for closing as a slow consumer: the
//! producer never waits and memory never grows past the bound.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::close::{Close, CloseReason};

/// One encoded message, ready for the wire. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Text-protocol frame (JSON), already checked to be UTF-8.
    Text(Bytes),
    /// Binary-protocol frame (MessagePack).
    Binary(Bytes),
}

impl Frame {
    pub fn len(&self) -> usize {
        match self {
            Self::Text(b) | Self::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded bytes, whatever the frame type.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(b) | Self::Binary(b) => b,
        }
    }

    /// A text frame from bytes the codec produced. Checks UTF-8 once; clone the
    /// result to share it between recipients.
    pub fn text(bytes: Bytes) -> Self {
        // The JSON encoders only write UTF-8; anything else is a bug, but a
        // binary frame is still a better outcome than a client failing on
        // invalid text.
        match std::str::from_utf8(&bytes) {
            Ok(_) => Self::Text(bytes),
            Err(_) => Self::Binary(bytes),
        }
    }
}

/// Returned by [`Outbox::push`] when the bound was reached and the connection
/// is now closing as a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outbox full: connection closed as a slow consumer")]
pub struct Full;

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    bytes: usize,
    close: Option<Close>,
}

/// See the module docs.
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when there is something to drain.
    notify: Notify,
    /// Wakes a writer stuck writing to a client that stopped reading.
    abort: Notify,
    limit: usize,
}

impl Outbox {
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            abort: Notify::new(),
            limit,
        }
    }

    /// Queues a frame. Frames pushed after a close was requested are dropped.
    pub fn push(&self, frame: Frame) -> Result<(), Full> {
        let mut s = self.state.lock();
        if s.close.is_some() {
            return Ok(());
        }
        if s.bytes + frame.len() > self.limit {
            s.frames = VecDeque::new();
            s.bytes = 0;
            s.close = Some(Close::new(
                CloseReason::SlowConsumer,
                Some("Connection closed with an error. slow consumer".into()),
                true,
            ));
            drop(s);
            self.notify.notify_one();
            self.abort.notify_one();
            return Err(Full);
        }
        s.bytes += frame.len();
        s.frames.push_back(frame);
        drop(s);
        self.notify.notify_one();
        Ok(())
    }

    /// Asks the writer to close the connection after the frames already
    /// queued. The first request wins.
    pub fn close(&self, close: Close) {
        let mut s = self.state.lock();
        if s.close.is_none() {
            s.close = Some(close);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.state.lock().close.is_some()
    }

    /// The pending close request, if any.
    pub fn close_request(&self) -> Option<Close> {
        self.state.lock().close.clone()
    }

    /// Waits until there is something to drain. Only the connection's writer
    /// calls this.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }

    /// Resolves once the connection overflowed its bound. The writer races
    /// its socket writes against this so a client that stopped reading cannot
    /// hold the connection open.
    pub async fn aborted(&self) {
        self.abort.notified().await;
    }

    /// Moves every queued frame into `out` and returns the pending close
    /// request, if any (to act on after writing `out`).
    pub fn drain(&self, out: &mut Vec<Frame>) -> Option<Close> {
        let mut s = self.state.lock();
        out.extend(s.frames.drain(..));
        s.bytes = 0;
        if s.frames.capacity() > 64 {
            // Give back memory a burst left behind; idle connections stay small.
            s.frames = VecDeque::new();
        }
        s.close.clone()
    }

    /// Like [`drain`](Self::drain), but moves frames only while they fit in
    /// `budget` bytes (at least one when `budget` is non-zero). Frames left
    /// behind wait for the next wake-up ([`wake`](Self::wake) once there is
    /// budget again); the close request is returned only once nothing is left
    /// to write before it.
    pub fn drain_up_to(&self, out: &mut Vec<Frame>, budget: usize) -> Option<Close> {
        let mut s = self.state.lock();
        let mut taken = 0;
        while let Some(front) = s.frames.front() {
            let len = front.len();
            if budget == 0 || (taken > 0 && taken + len > budget) {
                break;
            }
            taken += len;
            s.bytes -= len;
            out.extend(s.frames.pop_front());
        }
        if !s.frames.is_empty() {
            return None;
        }
        if s.frames.capacity() > 64 {
            s.frames = VecDeque::new();
        }
        s.close.clone()
    }

    /// Wakes the writer, e.g. when it may take frames it left behind.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame::text(Bytes::from(vec![b'x'; n]))
    }

    #[test]
    fn drains_everything_in_order() {
        let o = Outbox::new(100);
        o.push(frame(10)).unwrap();
        o.push(frame(20)).unwrap();
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), None);
        assert_eq!(out.iter().map(Frame::len).collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!(o.queued_bytes(), 0);
    }

    #[test]
    fn overflow_clears_queue_and_closes_as_slow_consumer() {
        let o = Outbox::new(100);
        o.push(frame(60)).unwrap();
        assert_eq!(o.push(frame(60)), Err(Full));
        assert_eq!(o.queued_bytes(), 0);
        // Later pushes are dropped without error: the connection is closing.
        assert_eq!(o.push(frame(1)), Ok(()));
        let mut out = Vec::new();
        let close = o.drain(&mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(close.reason, CloseReason::SlowConsumer);
        assert!(close.allow_reconnect);
    }

    #[test]
    fn first_close_wins_and_queued_frames_are_still_drained() {
        let o = Outbox::new(100);
        o.push(frame(5)).unwrap();
        o.close(Close::quiet(CloseReason::ClosedByServer));
        o.close(Close::new(CloseReason::Shutdown, None, true));
        let mut out = Vec::new();
        let close = o.drain(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(close.reason, CloseReason::ClosedByServer);
    }

    #[test]
    fn drain_up_to_respects_the_budget_and_holds_the_close_back() {
        let o = Outbox::new(100);
        for n in [10, 20, 30] {
            o.push(frame(n)).unwrap();
        }
        o.close(Close::quiet(CloseReason::ClosedByServer));
        let mut out = Vec::new();
        assert_eq!(o.drain_up_to(&mut out, 0), None);
        assert!(out.is_empty());
        // The first frame always moves, even when larger than the budget.
        assert_eq!(o.drain_up_to(&mut out, 5), None);
        assert_eq!(o.drain_up_to(&mut out, 25), None);
        assert_eq!(out.iter().map(Frame::len).collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!(o.queued_bytes(), 30);
        let close = o.drain_up_to(&mut out, 1000).unwrap();
        assert_eq!(close.reason, CloseReason::ClosedByServer);
        assert_eq!(o.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn push_wakes_the_writer() {
        let o = std::sync::Arc::new(Outbox::new(100));
        let o2 = o.clone();
        let waiter = tokio::spawn(async move {
            o2.ready().await;
            let mut out = Vec::new();
            o2.drain(&mut out);
            out.len()
        });
        tokio::task::yield_now().await;
        o.push(frame(3)).unwrap();
        assert_eq!(waiter.await.unwrap(), 1);
    }
}
