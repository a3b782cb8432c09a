//! One client's WebSocket over the upgraded connection: reads whole messages
//! through the [`frame`] decoder and writes batches of frames with one
//! vectored write each.
//!
//! Nothing is buffered per connection while it is idle. Reads go into a
//! buffer on the stack of the poll that makes them; only the part of a frame
//! that has not fully arrived is kept, and released once it has. Frames are
//! written straight from the shared encoded bytes, headers built on the
//! stack, so a broadcast is never copied per recipient.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Decoder, Event, FrameError, MAX_HEADER};
use crate::connection::outbox::Frame;

/// Bytes read per call. Lives on the stack only while a read is polled.
const READ_CHUNK: usize = 8 * 1024;
/// Frames gathered into one vectored write.
const WRITE_BATCH: usize = 32;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("websocket i/o: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// See the module docs. `S` is the upgraded connection.
pub struct Socket<S> {
    io: S,
    decoder: Decoder,
    /// The start of a frame that has not fully arrived; empty, with nothing
    /// allocated, between frames.
    partial: Vec<u8>,
    /// Control frames (Pong, Close) waiting to be written, ahead of data.
    control: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// `limit` bounds a client message (and so any frame) in bytes.
    pub fn new(io: S, limit: usize) -> Self {
        Self {
            io,
            decoder: Decoder::new(limit),
            partial: Vec::new(),
            control: Vec::new(),
        }
    }

    /// The next whole message; `None` once the client closed (its Close is
    /// answered on the next write or [`Socket::flush`]) or the stream ended.
    /// A protocol error queues the matching Close frame. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, SocketError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Vec<u8>>, SocketError>> {
        loop {
            // Answer Pings (and a Close) promptly, without waiting for data to send.
            if !self.control.is_empty() {
                if let Poll::Ready(Err(e)) = self.poll_write_control(cx) {
                    return Poll::Ready(Err(e.into()));
                }
                if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                    return Poll::Ready(Err(e.into()));
                }
            }
            while let Some((used, event)) = self.decode_partial()? {
                self.partial.drain(..used);
                if let Some(received) = self.on_event(event) {
                    self.release_partial();
                    return Poll::Ready(Ok(received));
                }
            }
            self.release_partial();
            let mut chunk = [MaybeUninit::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            let data = buf.filled_mut();
            if data.is_empty() {
                return Poll::Ready(Ok(None));
            }
            // Usually whole frames arrived: decode them where they are.
            let mut at = 0;
            if self.partial.is_empty() {
                while let Some((used, event)) = self.decode(&mut data[at..])? {
                    at += used;
                    if let Some(received) = self.on_event(event) {
                        self.partial.extend_from_slice(&data[at..]);
                        return Poll::Ready(Ok(received));
                    }
                }
            }
            self.partial.extend_from_slice(&data[at..]);
        }
    }

    fn decode_partial(&mut self) -> Result<Option<(usize, Option<Event>)>, FrameError> {
        if self.partial.is_empty() {
            return Ok(None);
        }
        let mut partial = std::mem::take(&mut self.partial);
        let decoded = self.decode(&mut partial);
        self.partial = partial;
        decoded
    }

    fn decode(&mut self, input: &mut [u8]) -> Result<Option<(usize, Option<Event>)>, FrameError> {
        self.decoder.decode(input).inspect_err(|e| {
            frame::close(e.close_code(), "", &mut self.control);
        })
    }

    fn release_partial(&mut self) {
        if self.partial.is_empty() && self.partial.capacity() > 0 {
            self.partial = Vec::new();
        }
    }

    /// What `recv` returns for an event, if it returns.
    fn on_event(&mut self, event: Option<Event>) -> Option<Option<Vec<u8>>> {
        match event? {
            Event::Message(data) => Some(Some(data)),
            Event::Ping(payload) => {
                frame::control(frame::PONG, &payload, &mut self.control);
                None
            }
            Event::Pong => None,
            Event::Close(code) => {
                // Echo the client's code (RFC 6455 §5.5.1).
                let code = code.unwrap_or(frame::NORMAL);
                frame::close(code, "", &mut self.control);
                Some(None)
            }
        }
    }

    /// Writes `frames` (after any pending control frame) and flushes.
    pub async fn write(&mut self, frames: &[Frame]) -> io::Result<()> {
        let mut at = Cursor::default();
        poll_fn(|cx| self.poll_write_frames(cx, frames, &mut at)).await?;
        self.flush().await
    }

    /// Writes a Close frame (after anything pending) and flushes.
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        frame::close(code, reason, &mut self.control);
        self.flush().await
    }

    /// Writes pending control frames and flushes.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_control(cx)).await?;
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx)).await
    }

    fn poll_write_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.control.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.control))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.control.drain(..n);
        }
        self.control = Vec::new();
        Poll::Ready(Ok(()))
    }

    fn poll_write_frames(
        &mut self,
        cx: &mut Context<'_>,
        frames: &[Frame],
        at: &mut Cursor,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_write_control(cx))?;
        while at.frame < frames.len() {
            let pending = &frames[at.frame..frames.len().min(at.frame + WRITE_BATCH)];
            let mut heads = [[0; MAX_HEADER]; WRITE_BATCH];
            let mut head_lens = [0; WRITE_BATCH];
            for (i, f) in pending.iter().enumerate() {
                head_lens[i] = frame::header(opcode(f), f.len(), &mut heads[i]);
            }
            let mut slices = [IoSlice::new(&[]); 2 * WRITE_BATCH];
            let mut count = 0;
            let mut offset = at.offset;
            for (i, f) in pending.iter().enumerate() {
                let head = &heads[i][..head_lens[i]];
                for part in [head, f.as_bytes()] {
                    let skip = offset.min(part.len());
                    offset -= skip;
                    if part.len() > skip {
                        slices[count] = IoSlice::new(&part[skip..]);
                        count += 1;
                    }
                }
            }
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            at.advance(frames, written);
        }
        Poll::Ready(Ok(()))
    }
}

/// How far a write of a batch of frames has got.
#[derive(Default)]
struct Cursor {
    frame: usize,
    /// Bytes of `frame` (header and payload) already written.
    offset: usize,
}

impl Cursor {
    fn advance(&mut self, frames: &[Frame], mut written: usize) {
        while written > 0 {
            let f = &frames[self.frame];
            let left = header_len(f.len()) + f.len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.frame += 1;
            self.offset = 0;
        }
    }
}

fn header_len(len: usize) -> usize {
    frame::header(frame::BINARY, len, &mut [0; MAX_HEADER])
}

fn opcode(f: &Frame) -> u8 {
    match f {
        Frame::Text(_) => frame::TEXT,
        Frame::Binary(_) => frame::BINARY,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

    use super::*;

    /// A server socket and an independent client implementation on the
    /// other end of an in-memory pipe of `capacity` bytes.
    async fn pair(capacity: usize) -> (Socket<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = duplex(capacity);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (Socket::new(server, 1 << 20), client)
    }

    #[tokio::test]
    async fn reads_messages_and_answers_pings_while_idle() {
        let (mut server, mut client) = pair(64 * 1024).await;
        client
            .send(Message::text("{\"protocol\":\"json\"}\u{1e}"))
            .await
            .unwrap();
        client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            b"{\"protocol\":\"json\"}\x1e"
        );
        assert_eq!(server.recv().await.unwrap().unwrap(), [1, 2, 3]);
        // Nothing is held between messages.
        assert_eq!(server.partial.capacity(), 0);

        client
            .send(Message::Ping(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        let reading = tokio::spawn(async move {
            let got = server.recv().await;
            (server, got)
        });
        let pong = client.next().await.unwrap().unwrap();
        assert_eq!(pong, Message::Pong(Bytes::from_static(b"hi")));
        client.close(None).await.unwrap();
        let (_, got) = reading.await.unwrap();
        assert_eq!(got.unwrap(), None, "a client Close ends the stream");
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_pipe_arrives_whole_and_in_order() {
        // 300 frames of mixed sizes through a 1 KiB pipe: many partial writes.
        let (mut server, mut client) = pair(1024).await;
        let frames: Vec<Frame> = (0..300)
            .map(|i| {
                let body = format!("{i}:{}", "x".repeat(i * 7 % 400));
                if i % 3 == 0 {
                    Frame::Binary(Bytes::from(body))
                } else {
                    Frame::text(Bytes::from(body))
                }
            })
            .collect();
        let expected = frames.clone();
        let writer = tokio::spawn(async move {
            server.write(&frames).await.unwrap();
            server
        });
        for frame in expected {
            let got = client.next().await.unwrap().unwrap();
            let want = match frame {
                Frame::Text(b) => Message::Text(Utf8Bytes::try_from(b).unwrap()),
                Frame::Binary(b) => Message::Binary(b),
            };
            assert_eq!(got, want);
        }
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn close_and_protocol_errors_reach_the_client_with_their_codes() {
        let (mut server, mut client) = pair(4096).await;
        server
            .close(frame::INTERNAL_ERROR, "handshake error")
            .await
            .unwrap();
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(close)) => {
                assert_eq!(close.code, CloseCode::Error);
                assert_eq!(close.reason, "handshake error");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }

        // An unmasked client frame is a protocol error: failed with 1002.
        let (server_io, mut raw) = duplex(4096);
        let mut server = Socket::new(server_io, 1024);
        raw.write_all(&[0x81, 0x01, b'x']).await.unwrap();
        let error = server.recv().await.unwrap_err();
        assert!(
            matches!(error, SocketError::Frame(FrameError::Protocol(_))),
            "{error}"
        );
        server.flush().await.unwrap();
        let mut close = [0; 4];
        raw.read_exact(&mut close).await.unwrap();
        assert_eq!(close, [0x88, 2, 0x03, 0xea]);
    }
}
