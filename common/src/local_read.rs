//! Short-circuit local reads: the exchange between a rawx and a reader on the same
//! host (the S3 gateway's sdk), in the manner of HDFS short-circuit reads.
//!
//! A rawx configured with a local-read folder binds a Unix socket there, named by the
//! address it advertises ([`socket_path`]). A reader that finds the socket of the rawx
//! holding a chunk connects, sends the chunk id, and receives the open chunk file (as
//! an `SCM_RIGHTS` file descriptor) with its [`Layout`]; it then reads the data and
//! verifies every segment against the file's checksum table itself, instead of
//! receiving the bytes over TCP. The rawx still decides what is served: it validates
//! the chunk id and the file header before handing the file out, exactly as for a GET.
//!
//! One exchange per connection:
//!
//! ```text
//! request   <64 hex chunk id>\n
//! reply     OPEN <size> <segment_bytes> <data_offset> <table_offset>\n   (+ the file)
//!           NOTFOUND\n
//!           ERROR <message>\n
//! ```
//!
//! The checksum table holds one crc32c (u32 little-endian) per segment of
//! `segment_bytes` data bytes, the last one possibly short.

use std::path::{Path, PathBuf};

/// Longest reply line, newline included.
pub const MAX_REPLY_BYTES: usize = 1024;
/// Longest request line, newline included.
pub const REQUEST_BYTES: usize = 65;
/// Longest path a Unix socket address holds on Linux (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// The socket a rawx advertising `addr` binds in `dir`: `rawx-<addr>.sock`, with
/// every character but ASCII letters, digits, `.` and `-` replaced by `_`.
pub fn socket_path(dir: &Path, addr: &str) -> PathBuf {
    let name: String = addr
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("rawx-{name}.sock"))
}

/// [`socket_path`], or why it cannot be bound: longer than a Unix socket address
/// holds ([`MAX_SOCKET_PATH_BYTES`]).
pub fn bindable_socket_path(dir: &Path, addr: &str) -> Result<PathBuf, String> {
    bindable(socket_path(dir, addr))
}

/// `path`, or why it cannot be bound: longer than a Unix socket address holds.
pub(crate) fn bindable(path: PathBuf) -> Result<PathBuf, String> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH_BYTES {
        return Err(format!(
            "local-read socket {} is {len} bytes long, over the {MAX_SOCKET_PATH_BYTES} a Unix \
             socket path may have: choose a shorter local-read folder",
            path.display()
        ));
    }
    Ok(path)
}

/// `ERROR <message>\n` in at most `max` bytes: control characters become spaces (the
/// line stays one line) and the message is cut to fit.
pub(crate) fn error_line(message: &str, max: usize) -> String {
    let mut m: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    while m.len() > max - "ERROR \n".len() {
        m.pop();
    }
    format!("ERROR {m}\n")
}

/// Where the bytes of an opened chunk lie in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Data bytes.
    pub size: u64,
    /// Data bytes per checksum segment (above 0).
    pub segment_bytes: u32,
    /// File offset of data byte 0.
    pub data_offset: u64,
    /// File offset of the checksum table.
    pub table_offset: u64,
}

impl Layout {
    /// Number of segments (and of checksum table entries).
    pub fn segments(&self) -> u64 {
        self.size.div_ceil(u64::from(self.segment_bytes))
    }
}

/// What a rawx answers to a local-read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The chunk is open; its file comes with the reply.
    Open(Layout),
    /// No such chunk on this volume.
    NotFound,
    /// The chunk cannot be served (corrupt header, I/O error, bad request, busy).
    Failed(String),
}

impl Reply {
    /// The reply line, newline included, at most [`MAX_REPLY_BYTES`].
    pub fn encode(&self) -> String {
        match self {
            Reply::Open(l) => format!(
                "OPEN {} {} {} {}\n",
                l.size, l.segment_bytes, l.data_offset, l.table_offset
            ),
            Reply::NotFound => "NOTFOUND\n".to_string(),
            Reply::Failed(m) => error_line(m, MAX_REPLY_BYTES),
        }
    }

    /// Parses a reply line (with or without its newline).
    pub fn decode(line: &str) -> Result<Reply, String> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "NOTFOUND" if rest.is_empty() => Ok(Reply::NotFound),
            "ERROR" => Ok(Reply::Failed(rest.to_string())),
            "OPEN" => {
                let f: Vec<u64> = rest
                    .split(' ')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("bad OPEN reply {line:?}"))?;
                let [size, seg, data_offset, table_offset] = f[..] else {
                    return Err(format!("bad OPEN reply {line:?}"));
                };
                let segment_bytes = u32::try_from(seg)
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("bad segment size in {line:?}"))?;
                if data_offset
                    .checked_add(size)
                    .is_none_or(|end| end > table_offset)
                {
                    return Err(format!("checksum table overlaps the data in {line:?}"));
                }
                Ok(Reply::Open(Layout {
                    size,
                    segment_bytes,
                    data_offset,
                    table_offset,
                }))
            }
            _ => Err(format!("unknown reply {line:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_keep_only_safe_characters() {
        let p = socket_path(Path::new("/run/oxio"), "127.0.0.1:6200");
        assert_eq!(p, Path::new("/run/oxio/rawx-127.0.0.1_6200.sock"));
        let p = socket_path(Path::new("/r"), "[::1]:6200");
        assert_eq!(p, Path::new("/r/rawx-___1__6200.sock"));
        let p = socket_path(Path::new("/r"), "../x/y");
        assert_eq!(p, Path::new("/r/rawx-.._x_y.sock"));
    }

    #[test]
    fn overlong_socket_paths_are_refused() {
        let dir = Path::new("/run/oxio");
        assert_eq!(
            bindable_socket_path(dir, "127.0.0.1:6200").unwrap(),
            socket_path(dir, "127.0.0.1:6200")
        );
        let long = Path::new("/").join("x".repeat(100));
        let err = bindable_socket_path(&long, "127.0.0.1:6200").unwrap_err();
        assert!(err.contains("shorter"), "{err}");
    }

    #[test]
    fn replies_round_trip() {
        let open = Reply::Open(Layout {
            size: 5 << 20,
            segment_bytes: 65536,
            data_offset: 4096,
            table_offset: 4096 + (5 << 20),
        });
        for r in [open, Reply::NotFound, Reply::Failed("disk on fire".into())] {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn bad_replies_are_refused() {
        for bad in [
            "",
            "OPEN 1 2 3",
            "OPEN 1 0 4096 5000",
            "OPEN 10 4096 4096 4100",
            "OPEN a b c d",
            "NOTFOUND x",
            "HELLO",
        ] {
            assert!(Reply::decode(bad).is_err(), "{bad:?} accepted");
        }
        let long = Reply::Failed(format!("a\nb{}", "x".repeat(5000))).encode();
        assert!(long.len() <= MAX_REPLY_BYTES);
        assert_eq!(long.matches('\n').count(), 1);
    }
}
