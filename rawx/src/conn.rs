//! One client connection: a read buffer over compio's `TcpStream` with owned buffers,
//! request-head reading with limits and timeouts, and body framing (Content-Length and
//! chunked).

use crate::error::{Error, Result};
use crate::http::{self, BodyKind, Request};
use compio::buf::{BufResult, IntoInner, IoBuf, IoVectoredBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use futures::future::{select, Either};
use std::pin::pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Capacity of the per-connection read buffer (must exceed the head limit).
const READ_BUF_BYTES: usize = 32 * 1024;
/// Longest chunk-size line of a chunked body (size + extensions).
const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// Most trailer lines after a chunked body.
const MAX_TRAILERS: usize = 64;

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Wait for the first byte of the next request.
    pub idle: Duration,
    /// Wait for each read or write once a request started.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(60),
            io: Duration::from_secs(60),
        }
    }
}

/// What one request moved on the wire, taken with [`Conn::take_counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounters {
    /// Bytes read from the socket.
    pub bytes_in: u64,
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// Status of the response head sent, if any.
    pub status: Option<u16>,
}

/// A client connection with its read buffer.
pub struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
    timeouts: Timeouts,
    counters: WireCounters,
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

impl Conn {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream, timeouts: Timeouts) -> Self {
        Conn {
            stream,
            rbuf: Vec::with_capacity(READ_BUF_BYTES),
            rpos: 0,
            timeouts,
            counters: WireCounters::default(),
        }
    }

    /// Records the status of the response head about to be written.
    pub fn set_status(&mut self, status: u16) {
        self.counters.status = Some(status);
    }

    /// Returns and resets the wire counters (called once per request).
    pub fn take_counters(&mut self) -> WireCounters {
        std::mem::take(&mut self.counters)
    }

    fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    /// Reads more bytes into the read buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self, wait: Duration) -> Result<usize> {
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        if self.rbuf.capacity() < READ_BUF_BYTES {
            self.rbuf.reserve_exact(READ_BUF_BYTES - self.rbuf.len());
        }
        if self.rbuf.len() >= self.rbuf.capacity() {
            return Err(Error::BadRequest("read buffer full".into()));
        }
        let buf = std::mem::take(&mut self.rbuf);
        let res = compio::time::timeout(wait, self.stream.append(buf)).await;
        match res {
            Ok(BufResult(res, buf)) => {
                self.rbuf = buf;
                let n = res.map_err(|e| Error::ClientGone(format!("read: {e}")))?;
                self.counters.bytes_in += n as u64;
                Ok(n)
            }
            Err(_) => Err(Error::ClientGone("read timeout".into())),
        }
    }

    /// Waits for and parses the next request head. `Ok(None)`: the client closed the
    /// connection (or `shutdown` fired) between requests.
    pub async fn read_head(&mut self, shutdown: &CancellationToken) -> Result<Option<Request>> {
        loop {
            if let Some(end) = find_head_end(self.buffered()) {
                let head_len = end + 4;
                if head_len > http::MAX_HEAD_BYTES {
                    return Err(Error::HeadTooLarge);
                }
                let req = http::parse_head(&self.buffered()[..head_len]);
                self.rpos += head_len;
                return req.map(Some);
            }
            if self.buffered().len() > http::MAX_HEAD_BYTES {
                return Err(Error::HeadTooLarge);
            }
            let idle = self.buffered().is_empty();
            let n = if idle {
                if shutdown.is_cancelled() {
                    return Ok(None);
                }
                let wait = self.timeouts.idle;
                let read = pin!(self.fill(wait));
                let stop = pin!(shutdown.cancelled());
                match select(read, stop).await {
                    Either::Left((Ok(n), _)) => n,
                    // Idle timeout or reset between requests: a normal end.
                    Either::Left((Err(_), _)) | Either::Right(_) => return Ok(None),
                }
            } else {
                self.fill(self.timeouts.io).await?
            };
            if n == 0 {
                if idle {
                    return Ok(None);
                }
                return Err(Error::ClientGone(
                    "end of stream inside request head".into(),
                ));
            }
        }
    }

    /// Reads one CRLF-terminated line of at most `max` bytes (CRLF excluded).
    async fn read_line(&mut self, max: usize) -> Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                if pos > max {
                    return Err(Error::BadRequest("line too long in body framing".into()));
                }
                let line = self.buffered()[..pos].to_vec();
                self.rpos += pos + 2;
                return Ok(line);
            }
            if self.buffered().len() > max + 1 {
                return Err(Error::BadRequest("line too long in body framing".into()));
            }
            if self.fill(self.timeouts.io).await? == 0 {
                return Err(Error::ClientGone(
                    "end of stream inside body framing".into(),
                ));
            }
        }
    }

    /// Appends at most `max` body bytes to `dst` (within its spare capacity), from the
    /// read buffer first, else straight from the socket. `Ok(0)` at end of stream.
    async fn read_raw_into(&mut self, mut dst: Vec<u8>, max: usize) -> (Result<usize>, Vec<u8>) {
        let max = max.min(dst.capacity() - dst.len());
        if max == 0 {
            return (
                Err(Error::Runtime("no room to read the body into".into())),
                dst,
            );
        }
        if !self.buffered().is_empty() {
            let n = max.min(self.buffered().len());
            dst.extend_from_slice(&self.buffered()[..n]);
            self.rpos += n;
            return (Ok(n), dst);
        }
        let len = dst.len();
        let res = compio::time::timeout(
            self.timeouts.io,
            self.stream.read(dst.slice(len..len + max)),
        )
        .await;
        match res {
            Ok(BufResult(Ok(n), slice)) => {
                self.counters.bytes_in += n as u64;
                (Ok(n), slice.into_inner())
            }
            Ok(BufResult(Err(e), slice)) => (
                Err(Error::ClientGone(format!("read: {e}"))),
                slice.into_inner(),
            ),
            Err(_) => (
                Err(Error::ClientGone("body read timeout".into())),
                Vec::new(),
            ),
        }
    }

    /// Writes all of `buf` with the I/O timeout and gives it back.
    pub async fn write_all<B: IoBuf>(&mut self, buf: B) -> (Result<()>, Option<B>) {
        let len = buf.buf_len() as u64;
        match compio::time::timeout(self.timeouts.io, self.stream.write_all(buf)).await {
            Ok(BufResult(res, buf)) => {
                if res.is_ok() {
                    self.counters.bytes_out += len;
                }
                (
                    res.map_err(|e| Error::ClientGone(format!("write: {e}"))),
                    Some(buf),
                )
            }
            Err(_) => (Err(Error::ClientGone("write timeout".into())), None),
        }
    }

    /// Writes all of the buffers of `bufs` in order (one `sendmsg` when the socket
    /// takes them all) with the I/O timeout, and gives them back.
    pub async fn write_vectored_all<B: IoVectoredBuf>(
        &mut self,
        bufs: B,
    ) -> (Result<()>, Option<B>) {
        let len = bufs.total_len() as u64;
        match compio::time::timeout(self.timeouts.io, self.stream.write_vectored_all(bufs)).await {
            Ok(BufResult(res, bufs)) => {
                if res.is_ok() {
                    self.counters.bytes_out += len;
                }
                (
                    res.map_err(|e| Error::ClientGone(format!("write: {e}"))),
                    Some(bufs),
                )
            }
            Err(_) => (Err(Error::ClientGone("write timeout".into())), None),
        }
    }
}

#[derive(Debug)]
enum BodyState {
    Length { remaining: u64 },
    Chunked { remaining: u64, need_crlf: bool },
    Done,
}

/// Decodes one request body from a [`Conn`].
#[derive(Debug)]
pub struct BodyReader {
    state: BodyState,
}

impl BodyReader {
    /// A reader for a body framed as `kind`.
    pub fn new(kind: BodyKind) -> Self {
        let state = match kind {
            BodyKind::None | BodyKind::Length(0) => BodyState::Done,
            BodyKind::Length(n) => BodyState::Length { remaining: n },
            BodyKind::Chunked => BodyState::Chunked {
                remaining: 0,
                need_crlf: false,
            },
        };
        BodyReader { state }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    /// Appends body bytes to `dst` (up to its spare capacity, which must not be 0).
    /// `Ok(0)` once the body is complete; an early end of stream is an error.
    pub async fn read(&mut self, conn: &mut Conn, dst: Vec<u8>) -> (Result<usize>, Vec<u8>) {
        // Bounded: each round either returns or consumes one framing line.
        for _ in 0..(MAX_TRAILERS + 4) {
            match &mut self.state {
                BodyState::Done => return (Ok(0), dst),
                BodyState::Length { remaining } => {
                    let want = usize::try_from(*remaining).unwrap_or(usize::MAX);
                    let (res, dst) = conn.read_raw_into(dst, want).await;
                    return match res {
                        Ok(0) => (Err(Error::ClientGone("body ended early".into())), dst),
                        Ok(n) => {
                            *remaining -= n as u64;
                            if *remaining == 0 {
                                self.state = BodyState::Done;
                            }
                            (Ok(n), dst)
                        }
                        Err(e) => (Err(e), dst),
                    };
                }
                BodyState::Chunked {
                    remaining,
                    need_crlf,
                } => {
                    if *remaining > 0 {
                        let want = usize::try_from(*remaining).unwrap_or(usize::MAX);
                        let (res, dst) = conn.read_raw_into(dst, want).await;
                        return match res {
                            Ok(0) => (
                                Err(Error::ClientGone("chunked body ended early".into())),
                                dst,
                            ),
                            Ok(n) => {
                                *remaining -= n as u64;
                                (Ok(n), dst)
                            }
                            Err(e) => (Err(e), dst),
                        };
                    }
                    if *need_crlf {
                        match conn.read_line(0).await {
                            Ok(line) if line.is_empty() => *need_crlf = false,
                            Ok(_) => {
                                return (
                                    Err(Error::BadRequest("missing CRLF after chunk".into())),
                                    dst,
                                )
                            }
                            Err(e) => return (Err(e), dst),
                        }
                    }
                    let line = match conn.read_line(MAX_CHUNK_LINE_BYTES).await {
                        Ok(l) => l,
                        Err(e) => return (Err(e), dst),
                    };
                    let size = match parse_chunk_size(&line) {
                        Ok(s) => s,
                        Err(e) => return (Err(e), dst),
                    };
                    if size == 0 {
                        if let Err(e) = read_trailers(conn).await {
                            return (Err(e), dst);
                        }
                        self.state = BodyState::Done;
                        return (Ok(0), dst);
                    }
                    *remaining = size;
                    *need_crlf = true;
                }
            }
        }
        (
            Err(Error::BadRequest("body framing loop limit".into())),
            dst,
        )
    }
}

async fn read_trailers(conn: &mut Conn) -> Result<()> {
    let mut total = 0usize;
    for _ in 0..=MAX_TRAILERS {
        let line = conn.read_line(http::MAX_HEAD_BYTES).await?;
        if line.is_empty() {
            return Ok(());
        }
        total += line.len() + 2;
        if total > http::MAX_HEAD_BYTES {
            return Err(Error::HeadTooLarge);
        }
    }
    Err(Error::BadRequest("too many trailer lines".into()))
}

/// Parses a chunk-size line: hex digits, optional `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Result<u64> {
    let digits_end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = line[..digits_end].trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(Error::BadRequest("malformed chunk size".into()));
    }
    let text = std::str::from_utf8(digits)
        .map_err(|_| Error::BadRequest("malformed chunk size".into()))?;
    u64::from_str_radix(text, 16).map_err(|_| Error::BadRequest("malformed chunk size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"FF;name=value").unwrap(), 255);
        assert_eq!(parse_chunk_size(b"0").unwrap(), 0);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"zz").is_err());
        assert!(parse_chunk_size(b"-1").is_err());
        assert!(parse_chunk_size(b"1234567890abcdef0").is_err());
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nxx"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
