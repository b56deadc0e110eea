//! Local writes: the exchange between a rawx and a writer on the same host (the S3
//! gateway's sdk) that writes a chunk's data into the rawx's pending file itself,
//! instead of streaming it over TCP. The mirror of [`crate::local_read`].
//!
//! A rawx with a local-read folder also binds a write socket there, named by the
//! address it advertises ([`socket_path`]). One chunk per connection:
//!
//! ```text
//! request   WRITE <chunk id> <max bytes> <container> <content> <position> <policy> <request id or ->\n
//! reply     PENDING <segment_bytes> <data_offset> <align>\n   (+ the pending file)
//!           ERROR <message>\n
//! the writer writes data byte i at file offset data_offset + i, in whole blocks of
//! `align` bytes (the file may be open with O_DIRECT), every block but the last
//! partial one; then
//! request   COMMIT <size> <tail bytes> <crc32c of the data, 8 hex>\n
//!           + the tail (the data past the last whole block, size % align bytes)
//!           + the checksum table (one crc32c, u32 LE, per segment of the data)
//! reply     STORED <size> <hash>\n
//!           ERROR <message>\n
//! ```
//!
//! The rawx creates the pending file exactly as for a PUT (the id must be new, the
//! volume must have room for `max bytes`), writes the tail, the table and the header,
//! fsyncs and publishes the chunk as for a PUT. A connection closed before `STORED`
//! abandons the write: the rawx removes the pending file. The rawx trusts the table
//! it is given, as a local reader trusts the file it is given: both sides run on one
//! host under one service account (the socket is mode 0660).

use std::path::{Path, PathBuf};

/// Longest request or reply line, newline included.
pub const MAX_LINE_BYTES: usize = 1024;

/// The write socket a rawx advertising `addr` binds in `dir`: `rawx-<addr>.wsock`, the
/// address mangled as for the read socket ([`crate::local_read::socket_path`]).
pub fn socket_path(dir: &Path, addr: &str) -> PathBuf {
    crate::local_read::socket_path(dir, addr).with_extension("wsock")
}

/// [`socket_path`], or why it cannot be bound (as
/// [`crate::local_read::bindable_socket_path`]).
pub fn bindable_socket_path(dir: &Path, addr: &str) -> Result<PathBuf, String> {
    crate::local_read::bindable(socket_path(dir, addr))
}

/// Whether `s` can travel as one field of a line: not empty, no space or control.
fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A writer's request to write one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// Id of the new chunk.
    pub chunk_id: String,
    /// Most data bytes the writer may write (the room the rawx sets aside).
    pub max_bytes: u64,
    /// The chunk's container id.
    pub container: String,
    /// The chunk's content id.
    pub content: String,
    /// Its position in the content (`2` or `0.3`).
    pub position: String,
    /// The content's storage policy.
    pub policy: String,
    /// Id of the client request the write serves, for the rawx's logs (a token of
    /// at most 128 bytes).
    pub request_id: Option<String>,
}

/// Longest request id sent along.
const MAX_REQUEST_ID_BYTES: usize = 128;

impl WriteRequest {
    /// The request line, newline included; an error when a field cannot travel in it.
    pub fn encode(&self) -> Result<String, String> {
        let fields = [
            &self.chunk_id,
            &self.container,
            &self.content,
            &self.position,
            &self.policy,
        ];
        if let Some(bad) = fields.iter().find(|f| !is_token(f)) {
            return Err(format!("{bad:?} cannot be sent in a local-write request"));
        }
        // An id that cannot travel is left out, not a reason to refuse the write.
        let request_id = self
            .request_id
            .as_deref()
            .filter(|id| is_token(id) && id.len() <= MAX_REQUEST_ID_BYTES && *id != "-")
            .unwrap_or("-");
        let line = format!(
            "WRITE {} {} {} {} {} {} {request_id}\n",
            self.chunk_id, self.max_bytes, self.container, self.content, self.position, self.policy
        );
        if line.len() > MAX_LINE_BYTES {
            return Err("local-write request too long".into());
        }
        Ok(line)
    }

    /// Parses a request line (with or without its newline).
    pub fn decode(line: &str) -> Result<WriteRequest, String> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let f: Vec<&str> = line.split(' ').collect();
        let ["WRITE", chunk_id, max_bytes, container, content, position, policy, request_id] =
            f[..]
        else {
            return Err(format!("bad local-write request {line:?}"));
        };
        if ![chunk_id, container, content, position, policy, request_id]
            .iter()
            .all(|f| is_token(f))
            || request_id.len() > MAX_REQUEST_ID_BYTES
        {
            return Err(format!("bad field in local-write request {line:?}"));
        }
        let max_bytes = max_bytes
            .parse()
            .ok()
            .filter(|&n: &u64| n > 0)
            .ok_or_else(|| format!("bad size in local-write request {line:?}"))?;
        Ok(WriteRequest {
            chunk_id: chunk_id.to_string(),
            max_bytes,
            container: container.to_string(),
            content: content.to_string(),
            position: position.to_string(),
            policy: policy.to_string(),
            request_id: (request_id != "-").then(|| request_id.to_string()),
        })
    }
}

/// Where and how the writer writes into the pending file it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Data bytes per checksum segment.
    pub segment_bytes: u32,
    /// File offset of data byte 0 (a multiple of `align`).
    pub data_offset: u64,
    /// Writes go in whole blocks of this many bytes, at offsets that are multiples
    /// of it, from buffers aligned to it (a power of two).
    pub align: u32,
}

impl Pending {
    /// Bytes of the tail the writer sends with the commit of `size` data bytes.
    pub fn tail_bytes(&self, size: u64) -> u64 {
        size % u64::from(self.align)
    }

    /// Bytes of the checksum table of `size` data bytes.
    pub fn table_bytes(&self, size: u64) -> u64 {
        4 * size.div_ceil(u64::from(self.segment_bytes))
    }
}

/// What a rawx answers on the write socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The pending file is open; it comes with the reply.
    Pending(Pending),
    /// The chunk is durable and published.
    Stored {
        /// Data bytes.
        size: u64,
        /// The chunk's hash, as a PUT answers it.
        hash: String,
    },
    /// The write cannot go on (the id is taken, the volume is full, a bad request, an
    /// I/O error); the pending file, if any, is removed.
    Failed(String),
}

impl Reply {
    /// The reply line, newline included, at most [`MAX_LINE_BYTES`].
    pub fn encode(&self) -> String {
        match self {
            Reply::Pending(p) => format!(
                "PENDING {} {} {}\n",
                p.segment_bytes, p.data_offset, p.align
            ),
            Reply::Stored { size, hash } => format!("STORED {size} {hash}\n"),
            Reply::Failed(m) => crate::local_read::error_line(m, MAX_LINE_BYTES),
        }
    }

    /// Parses a reply line (with or without its newline).
    pub fn decode(line: &str) -> Result<Reply, String> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = || format!("bad {word} reply {line:?}");
        match word {
            "ERROR" => Ok(Reply::Failed(rest.to_string())),
            "PENDING" => {
                let f: Vec<u64> = rest
                    .split(' ')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad())?;
                let [seg, data_offset, align] = f[..] else {
                    return Err(bad());
                };
                let segment_bytes = u32::try_from(seg).ok().filter(|&s| s > 0).ok_or_else(bad)?;
                let align = u32::try_from(align)
                    .ok()
                    .filter(|a| a.is_power_of_two())
                    .ok_or_else(bad)?;
                if data_offset % u64::from(align) != 0 {
                    return Err(bad());
                }
                Ok(Reply::Pending(Pending {
                    segment_bytes,
                    data_offset,
                    align,
                }))
            }
            "STORED" => {
                let (size, hash) = rest.split_once(' ').ok_or_else(bad)?;
                let size = size.parse().map_err(|_| bad())?;
                if !is_token(hash) {
                    return Err(bad());
                }
                Ok(Reply::Stored {
                    size,
                    hash: hash.to_string(),
                })
            }
            _ => Err(format!("unknown reply {line:?}")),
        }
    }
}

/// The commit line: what follows it is `tail_bytes` of data, then the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Data bytes written, tail included.
    pub size: u64,
    /// Bytes of the tail that follow the line.
    pub tail_bytes: u64,
    /// crc32c of the whole data.
    pub crc: u32,
}

impl Commit {
    /// The commit line, newline included.
    pub fn encode(&self) -> String {
        format!(
            "COMMIT {} {} {:08x}\n",
            self.size, self.tail_bytes, self.crc
        )
    }

    /// Parses a commit line and checks it against the pending write: at most
    /// `max_bytes` of data and a tail of exactly `size % align` bytes.
    pub fn decode(line: &str, pending: &Pending, max_bytes: u64) -> Result<Commit, String> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let f: Vec<&str> = line.split(' ').collect();
        let ["COMMIT", size, tail, crc] = f[..] else {
            return Err(format!("bad commit {line:?}"));
        };
        let size: u64 = size
            .parse()
            .map_err(|_| format!("bad size in commit {line:?}"))?;
        let tail_bytes: u64 = tail
            .parse()
            .map_err(|_| format!("bad tail in commit {line:?}"))?;
        let crc = u32::from_str_radix(crc, 16)
            .ok()
            .filter(|_| crc.len() == 8)
            .ok_or_else(|| format!("bad crc in commit {line:?}"))?;
        if size > max_bytes {
            return Err(format!(
                "commit of {size} bytes, over the {max_bytes} asked for"
            ));
        }
        if tail_bytes != pending.tail_bytes(size) {
            return Err(format!(
                "commit of {size} bytes with a tail of {tail_bytes} bytes (expected {})",
                pending.tail_bytes(size)
            ));
        }
        Ok(Commit {
            size,
            tail_bytes,
            crc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> WriteRequest {
        WriteRequest {
            chunk_id: "AB".repeat(32),
            max_bytes: 64 << 20,
            container: "C0FFEE".into(),
            content: "0123abcd".into(),
            position: "0.3".into(),
            policy: "EC42".into(),
            request_id: Some("req-1".into()),
        }
    }

    const PENDING: Pending = Pending {
        segment_bytes: 65536,
        data_offset: 4096,
        align: 4096,
    };

    #[test]
    fn socket_is_named_like_the_read_socket() {
        let p = socket_path(Path::new("/run/oxio"), "127.0.0.1:6200");
        assert_eq!(p, Path::new("/run/oxio/rawx-127.0.0.1_6200.wsock"));
    }

    #[test]
    fn requests_round_trip_and_refuse_bad_fields() {
        let r = request();
        assert_eq!(WriteRequest::decode(&r.encode().unwrap()).unwrap(), r);
        let mut anonymous = request();
        anonymous.request_id = None;
        assert_eq!(
            WriteRequest::decode(&anonymous.encode().unwrap()).unwrap(),
            anonymous
        );
        // An id that cannot travel is dropped, the write still asked for.
        let mut odd = request();
        odd.request_id = Some("a b".into());
        assert_eq!(
            WriteRequest::decode(&odd.encode().unwrap()).unwrap(),
            anonymous
        );
        let mut spaced = request();
        spaced.position = "0 3".into();
        assert!(spaced.encode().is_err());
        for bad in [
            "",
            "WRITE",
            "WRITE a 0 c d e f -",
            "WRITE a x c d e f -",
            "WRITE a 1 c d e f",
            "WRITE a 1 c d e f - g",
            "READ a 1 c d e f -",
            "WRITE a 1  d e f -",
        ] {
            assert!(WriteRequest::decode(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Pending(PENDING),
            Reply::Stored {
                size: 5 << 20,
                hash: "crc32c:0badf00d".into(),
            },
            Reply::Failed("disk on fire".into()),
        ] {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
        for bad in [
            "PENDING 65536 4096",
            "PENDING 0 4096 4096",
            "PENDING 65536 4096 3000",
            "PENDING 65536 100 4096",
            "STORED x y",
            "STORED 5",
            "HELLO",
        ] {
            assert!(Reply::decode(bad).is_err(), "{bad:?} accepted");
        }
        let long = Reply::Failed(format!("a\nb{}", "x".repeat(5000))).encode();
        assert!(long.len() <= MAX_LINE_BYTES);
        assert_eq!(long.matches('\n').count(), 1);
    }

    #[test]
    fn commits_are_checked_against_the_pending_write() {
        let c = Commit {
            size: 3 * 4096 + 10,
            tail_bytes: 10,
            crc: 0xdead_beef,
        };
        assert_eq!(Commit::decode(&c.encode(), &PENDING, 1 << 20).unwrap(), c);
        // Over the room asked for, a tail of the wrong length, a bad crc.
        assert!(Commit::decode(&c.encode(), &PENDING, 4096).is_err());
        assert!(Commit::decode("COMMIT 12298 11 deadbeef", &PENDING, 1 << 20).is_err());
        assert!(Commit::decode("COMMIT 12298 10 beef", &PENDING, 1 << 20).is_err());
        assert!(Commit::decode("COMMIT 12298 10", &PENDING, 1 << 20).is_err());
        assert_eq!(PENDING.table_bytes(c.size), 4);
        assert_eq!(PENDING.table_bytes(0), 0);
        assert_eq!(PENDING.tail_bytes(8192), 0);
    }
}
