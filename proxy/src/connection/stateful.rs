//! Stateful reconnect bookkeeping for one connection, sans-IO: the sequence
//! numbers of both directions, the frames sent and not yet acknowledged, and
//! when an Ack is owed.
//!
//! Invocation, StreamItem, Completion, StreamInvocation and CancelInvocation
//! are numbered from 1 in each direction. Every frame the outbox carries is
//! one of those (pings, closes, acks and sequences are written by the
//! transport itself), so each frame written counts as one number.

use std::collections::VecDeque;

use super::outbox::Frame;

/// The client's Sequence named a message it never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Sequence ID greater than amount of messages we've received.")]
pub struct SequenceAhead;

/// See the module docs.
#[derive(Debug)]
pub struct Stateful {
    /// Frames written and not acknowledged, oldest first.
    sent: VecDeque<Frame>,
    /// Sequence id of `sent.front()` (or of the next frame when empty).
    first_sent: u64,
    sent_bytes: usize,
    /// Bound on `sent_bytes`; the writer stops taking from the outbox at it.
    limit: usize,
    /// Highest client sequence id handled.
    received: u64,
    /// The id the next numbered client message carries.
    next_in: u64,
    /// `received` as last acknowledged to the client.
    acked: u64,
}

impl Stateful {
    pub fn new(limit: usize) -> Self {
        Self {
            sent: VecDeque::new(),
            first_sent: 1,
            sent_bytes: 0,
            limit,
            received: 0,
            next_in: 1,
            acked: 0,
        }
    }

    /// Keeps a written frame until the client acknowledges it. Cloning a
    /// frame shares its bytes.
    pub fn record(&mut self, frame: &Frame) {
        self.sent_bytes += frame.len();
        self.sent.push_back(frame.clone());
    }

    /// Bytes the writer may still take from the outbox before it must wait
    /// for an Ack.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.sent_bytes)
    }

    /// Bytes held for replay.
    pub fn held_bytes(&self) -> usize {
        self.sent_bytes
    }

    /// The client's Ack: drops every frame up to `sequence_id`.
    pub fn on_ack(&mut self, sequence_id: u64) {
        while self.first_sent <= sequence_id {
            let Some(frame) = self.sent.pop_front() else {
                break;
            };
            self.sent_bytes -= frame.len();
            self.first_sent += 1;
        }
    }

    /// What to write after a reconnect: the Sequence id, then these frames.
    pub fn replay(&self) -> (u64, impl Iterator<Item = &Frame>) {
        (self.first_sent, self.sent.iter())
    }

    /// A numbered client message arrived; false when it was already handled
    /// before a reconnect (a replayed duplicate to drop).
    pub fn admit(&mut self) -> bool {
        let id = self.next_in;
        self.next_in += 1;
        if id <= self.received {
            return false;
        }
        self.received = id;
        true
    }

    /// The client's Sequence: its next numbered message carries `sequence_id`.
    pub fn on_sequence(&mut self, sequence_id: u64) -> Result<(), SequenceAhead> {
        // Ids up to `received + 1` are known or next; anything later would
        // mean messages were lost.
        if sequence_id > self.received + 1 {
            return Err(SequenceAhead);
        }
        self.next_in = sequence_id;
        Ok(())
    }

    /// Whether numbered messages arrived since the last Ack.
    pub fn ack_owed(&self) -> bool {
        self.received > self.acked
    }

    /// The id to acknowledge now, if any; marks it acknowledged.
    pub fn take_ack(&mut self) -> Option<u64> {
        self.ack_owed().then(|| {
            self.acked = self.received;
            self.received
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(n: usize) -> Frame {
        Frame::Binary(Bytes::from(vec![0; n]))
    }

    #[test]
    fn acks_free_room_and_replay_starts_at_the_first_unacked() {
        let mut s = Stateful::new(100);
        for n in [10, 20, 30] {
            s.record(&frame(n));
        }
        assert_eq!(s.room(), 40);
        s.on_ack(2);
        assert_eq!(s.room(), 70);
        let (first, frames) = s.replay();
        assert_eq!(first, 3);
        assert_eq!(frames.map(Frame::len).collect::<Vec<_>>(), vec![30]);
        // Acks beyond what was sent, or repeated, change nothing more.
        s.on_ack(9);
        s.on_ack(1);
        assert_eq!(s.held_bytes(), 0);
        let (first, frames) = s.replay();
        assert_eq!((first, frames.count()), (4, 0));
        s.record(&frame(5));
        assert_eq!(s.replay().0, 4);
    }

    #[test]
    fn replayed_client_messages_are_dropped_once_handled() {
        let mut s = Stateful::new(100);
        assert!(s.admit() && s.admit() && s.admit());
        assert_eq!(s.take_ack(), Some(3));
        assert_eq!(s.take_ack(), None);
        // After a reconnect the client resends from 2: 2 and 3 are duplicates.
        s.on_sequence(2).unwrap();
        assert!(!s.admit());
        assert!(!s.admit());
        assert!(!s.ack_owed());
        assert!(s.admit());
        assert_eq!(s.take_ack(), Some(4));
        // Starting right after the last handled id is fine; beyond is not.
        assert_eq!(s.on_sequence(5), Ok(()));
        assert_eq!(s.on_sequence(6), Err(SequenceAhead));
    }
}
