//! Snapshot files of one group. A snapshot is streamed from a RocksDB snapshot of the
//! group's state-machine range into a temporary file, fsynced and renamed; nothing is
//! held in memory whole.
//!
//! Format: `OXSNAP01`, `u32` length + JSON `SnapshotMeta`, then records
//! `u32 key length, u32 value length, key, value` (keys relative to the group's data
//! range), then the end marker `u32::MAX` and the `u64` record count.

use crate::error::{Error, Result};
use crate::keys;
use crate::types::{DirLogId, DirMembership, DirSnapshotMeta};
use rocksdb::{ReadOptions, WriteBatch, WriteOptions, DB};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"OXSNAP01";
const END: u32 = u32::MAX;
/// Largest key a snapshot record may carry.
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Largest value a snapshot record may carry.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Largest snapshot meta header.
const MAX_META_BYTES: usize = 16 * 1024 * 1024;
/// Bytes per write batch while installing.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Path of the current snapshot of `group`.
pub fn path(dir: &Path, group: u64) -> PathBuf {
    dir.join(format!("group-{group:020}.snap"))
}

fn get_json<T: serde::de::DeserializeOwned>(v: Option<Vec<u8>>) -> Result<Option<T>> {
    match v {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Builds a snapshot of `group` from a consistent RocksDB snapshot and makes it the
/// group's current snapshot file. Blocking.
pub fn build(db: &DB, group: u64, dir: &Path) -> Result<DirSnapshotMeta> {
    let snap = db.snapshot();
    let applied: Option<DirLogId> = get_json::<Option<DirLogId>>(snap.get(keys::named(
        keys::SM_META,
        group,
        keys::APPLIED,
    ))?)?
    .flatten();
    let membership: DirMembership =
        get_json(snap.get(keys::named(keys::SM_META, group, keys::MEMBERSHIP))?)?
            .unwrap_or_default();
    let snapshot_id = match &applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, oxio_common::now_ms()),
        None => format!("0-0-{}", oxio_common::now_ms()),
    };
    let meta = DirSnapshotMeta {
        last_log_id: applied,
        last_membership: membership,
        snapshot_id,
    };

    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut w = BufWriter::new(tmp.as_file());
    let meta_json = serde_json::to_vec(&meta)?;
    w.write_all(MAGIC)?;
    w.write_all(&(meta_json.len() as u32).to_be_bytes())?;
    w.write_all(&meta_json)?;

    let start = keys::group_prefix(keys::SM_DATA, group);
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(keys::group_prefix(keys::SM_DATA, group + 1));
    let mut it = snap.raw_iterator_opt(ro);
    it.seek(&start);
    let mut count = 0u64;
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let Some(sub) = k.strip_prefix(start.as_slice()) else {
            break;
        };
        if sub.len() > MAX_KEY_BYTES || v.len() > MAX_VALUE_BYTES {
            return Err(Error::Corrupt(format!(
                "group {group}: record of {}+{} bytes exceeds snapshot limits",
                sub.len(),
                v.len()
            )));
        }
        w.write_all(&(sub.len() as u32).to_be_bytes())?;
        w.write_all(&(v.len() as u32).to_be_bytes())?;
        w.write_all(sub)?;
        w.write_all(v)?;
        count += 1;
        it.next();
    }
    it.status()?;
    w.write_all(&END.to_be_bytes())?;
    w.write_all(&count.to_be_bytes())?;
    w.flush()?;
    drop(w);
    tmp.as_file().sync_all()?;
    tmp.persist(path(dir, group))
        .map_err(|e| Error::Io(e.error))?;
    sync_dir(dir)?;
    tracing::info!(group, records = count, snapshot = %meta.snapshot_id, "snapshot built");
    Ok(meta)
}

fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// Reads the meta header of a snapshot file positioned at its start.
pub fn read_meta(r: &mut impl Read) -> Result<DirSnapshotMeta> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(Error::Corrupt("not an oxio snapshot file".into()));
    }
    let len = read_u32(r)? as usize;
    if len > MAX_META_BYTES {
        return Err(Error::Corrupt(format!("snapshot meta of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(serde_json::from_slice(&buf)?)
}

/// Opens the current snapshot of `group`, if any, returning its meta and the file
/// rewound to its start. Blocking.
pub fn open_current(dir: &Path, group: u64) -> Result<Option<(DirSnapshotMeta, File)>> {
    let mut f = match File::open(path(dir, group)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let meta = read_meta(&mut BufReader::new(&mut f))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(Some((meta, f)))
}

/// Path of a snapshot of `group` received and being installed: durable before the
/// group's state is touched, so an install cut short is finished at the next start
/// ([`resume_install`]).
pub fn installing_path(dir: &Path, group: u64) -> PathBuf {
    dir.join(format!("group-{group:020}.installing"))
}

/// Installs the snapshot in `src` (described by `meta`) as `group`'s state: the file
/// is copied and made durable as [`installing_path`] first, then the old state is
/// replaced by its records, the applied marks last in one synced batch, then the
/// file becomes the group's current snapshot. A crash at any point leaves either the
/// old state untouched or the durable file to finish from. Blocking.
pub fn install(
    db: &DB,
    group: u64,
    dir: &Path,
    mut src: File,
    meta: &DirSnapshotMeta,
) -> Result<()> {
    // Keep our own durable copy first: `src` may be a file we do not own.
    src.seek(SeekFrom::Start(0))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::copy(&mut src, tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.as_file_mut().seek(SeekFrom::Start(0))?;
    let file_meta = read_meta(&mut BufReader::new(tmp.as_file()))?;
    if file_meta.snapshot_id != meta.snapshot_id || file_meta.last_log_id != meta.last_log_id {
        return Err(Error::Corrupt(format!(
            "snapshot file {} does not match meta {}",
            file_meta.snapshot_id, meta.snapshot_id
        )));
    }
    let installing = installing_path(dir, group);
    tmp.persist(&installing).map_err(|e| Error::Io(e.error))?;
    sync_dir(dir)?;
    finish_install(db, group, dir, &installing)
}

/// Finishes an install that a crash cut short, when one was: the received file is
/// applied again (whole: the state is replaced, so this is idempotent). Returns
/// whether there was one. Called before the group's Raft instance starts. Blocking.
pub fn resume_install(db: &DB, group: u64, dir: &Path) -> Result<bool> {
    let installing = installing_path(dir, group);
    if !installing.exists() {
        return Ok(false);
    }
    tracing::warn!(group, "finishing a snapshot install cut short");
    finish_install(db, group, dir, &installing)?;
    Ok(true)
}

/// Replaces `group`'s state with the records of the snapshot file `file`, then makes
/// it the current snapshot.
fn finish_install(db: &DB, group: u64, dir: &Path, file: &Path) -> Result<()> {
    let mut r = BufReader::new(File::open(file)?);
    let meta = read_meta(&mut r)?;

    // First batch: drop the old state and its applied marks; until the last batch
    // the durable file is what a restart finishes from.
    let mut b = WriteBatch::default();
    b.delete_range(
        keys::group_prefix(keys::SM_DATA, group),
        keys::group_prefix(keys::SM_DATA, group + 1),
    );
    b.delete(keys::named(keys::SM_META, group, keys::APPLIED));
    b.delete(keys::named(keys::SM_META, group, keys::MEMBERSHIP));
    db.write(b)?;

    let mut b = WriteBatch::default();
    let mut batch_bytes = 0usize;
    let mut count = 0u64;
    loop {
        let klen = read_u32(&mut r)?;
        if klen == END {
            let mut c = [0u8; 8];
            r.read_exact(&mut c)?;
            if u64::from_be_bytes(c) != count {
                return Err(Error::Corrupt(format!(
                    "snapshot holds {count} records, trailer says {}",
                    u64::from_be_bytes(c)
                )));
            }
            break;
        }
        let vlen = read_u32(&mut r)? as usize;
        let klen = klen as usize;
        if klen > MAX_KEY_BYTES || vlen > MAX_VALUE_BYTES {
            return Err(Error::Corrupt(format!(
                "snapshot record of {klen}+{vlen} bytes"
            )));
        }
        let mut k = vec![0u8; klen];
        r.read_exact(&mut k)?;
        let mut v = vec![0u8; vlen];
        r.read_exact(&mut v)?;
        b.put(keys::named(keys::SM_DATA, group, &k), v);
        count += 1;
        batch_bytes += klen + vlen;
        if batch_bytes >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut b))?;
            batch_bytes = 0;
        }
    }
    b.put(
        keys::named(keys::SM_META, group, keys::APPLIED),
        serde_json::to_vec(&meta.last_log_id)?,
    );
    b.put(
        keys::named(keys::SM_META, group, keys::MEMBERSHIP),
        serde_json::to_vec(&meta.last_membership)?,
    );
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(b, &wo)?;
    drop(r);
    std::fs::rename(file, path(dir, group))?;
    sync_dir(dir)?;
    tracing::info!(group, records = count, snapshot = %meta.snapshot_id, "snapshot installed");
    Ok(())
}
