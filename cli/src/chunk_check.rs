//! Checking a chunk where meta2 says it is: a plain HTTP `HEAD http://ADDR/CHUNKID`
//! on its rawx, whose `x-oxio-chunk-size` and `x-oxio-chunk-hash` are compared with
//! the chunk record.

use oxio_proto::v1::ChunkRecord;
use std::time::Duration;

/// Deadline of one HEAD.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// HEADs in flight at once.
pub const CHECK_CONCURRENCY: usize = 8;

/// What the rawx says of a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// Present with the recorded size and checksum.
    Ok,
    /// The rawx answers 404: the chunk file is gone.
    Missing,
    /// Present, but its size or checksum differs from the record.
    Mismatch(String),
    /// No usable answer (connection refused, timeout, an error status).
    Unreachable(String),
}

impl ChunkState {
    /// `ok`, `missing`, `mismatch` or `unreachable`.
    pub fn name(&self) -> &'static str {
        match self {
            ChunkState::Ok => "ok",
            ChunkState::Missing => "missing",
            ChunkState::Mismatch(_) => "mismatch",
            ChunkState::Unreachable(_) => "unreachable",
        }
    }

    /// Why, for the states that have a reason.
    pub fn detail(&self) -> Option<&str> {
        match self {
            ChunkState::Mismatch(d) | ChunkState::Unreachable(d) => Some(d),
            _ => None,
        }
    }
}

/// The HTTP client the checks share.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .connect_timeout(CHECK_TIMEOUT)
        .build()
}

/// HEADs `chunk` on the rawx at `addr` and compares the answer with the record.
pub async fn check(http: &reqwest::Client, addr: &str, chunk: &ChunkRecord) -> ChunkState {
    let url = format!("http://{addr}/{}", chunk.chunk_id);
    let resp = match http.head(&url).send().await {
        Ok(r) => r,
        Err(e) => return ChunkState::Unreachable(format!("{addr}: {e}")),
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    compare(
        chunk,
        status,
        header("x-oxio-chunk-size").as_deref(),
        header("x-oxio-chunk-hash").as_deref(),
    )
}

/// The state of `chunk` from a rawx answer: its status and chunk headers.
pub fn compare(
    chunk: &ChunkRecord,
    status: u16,
    size: Option<&str>,
    hash: Option<&str>,
) -> ChunkState {
    match status {
        200 => {}
        404 => return ChunkState::Missing,
        other => return ChunkState::Unreachable(format!("rawx answered {other}")),
    }
    let Some(size) = size.and_then(|s| s.trim().parse::<u64>().ok()) else {
        return ChunkState::Mismatch("no valid x-oxio-chunk-size in the answer".into());
    };
    if size != chunk.size {
        return ChunkState::Mismatch(format!("size {size} on the rawx, {} recorded", chunk.size));
    }
    let hash = hash.unwrap_or_default().trim();
    if !chunk.hash.is_empty() && !hash.eq_ignore_ascii_case(&chunk.hash) {
        return ChunkState::Mismatch(format!(
            "checksum {hash:?} on the rawx, {:?} recorded",
            chunk.hash
        ));
    }
    ChunkState::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> ChunkRecord {
        ChunkRecord {
            size: 10,
            hash: "crc32c:0000abcd".into(),
            ..Default::default()
        }
    }

    #[test]
    fn states_from_answers() {
        let c = rec();
        assert_eq!(
            compare(&c, 200, Some("10"), Some("crc32c:0000ABCD")),
            ChunkState::Ok
        );
        assert_eq!(compare(&c, 404, None, None), ChunkState::Missing);
        assert_eq!(
            compare(&c, 200, Some("11"), Some("crc32c:0000abcd")).name(),
            "mismatch"
        );
        assert_eq!(
            compare(&c, 200, Some("10"), Some("crc32c:ffffffff")).name(),
            "mismatch"
        );
        assert_eq!(compare(&c, 200, None, None).name(), "mismatch");
        let s = compare(&c, 503, None, None);
        assert_eq!(
            (s.name(), s.detail()),
            ("unreachable", Some("rawx answered 503"))
        );
    }
}
