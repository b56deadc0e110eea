//! The `oxio object` subcommands (list, create, save, show, delete, locate): the
//! objects of a container, their bytes streamed from or to a file, their header,
//! and where their chunks are.

use crate::chunk_check::{self, ChunkState, CHECK_CONCURRENCY};
use crate::grid_error::{explain, Target, UsageError};
use crate::output::{Fields, Format, Rows};
use crate::progress::bytes_bar;
use anyhow::{Context, Result};
use futures::StreamExt;
use md5::{Digest, Md5};
use oxio_proto::v1::{ChunkRecord, ContentHeader};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Largest total of user metadata names and values, as S3 allows.
const MAX_USER_META_BYTES: usize = 2048;
/// Bytes read from a file at a time while uploading it.
const READ_BYTES: usize = 256 * 1024;
/// Buffer of the file or stdout an object is saved to.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Which object: account, container, key, and the directory seeds for messages.
#[derive(Clone, Copy)]
pub struct ObjectRef<'a> {
    /// Account.
    pub account: &'a str,
    /// Container (bucket).
    pub container: &'a str,
    /// Key.
    pub key: &'a str,
    /// Directory addresses, named when the directory cannot be reached.
    pub dirs: &'a [String],
}

impl ObjectRef<'_> {
    fn explain(&self, e: oxio_sdk::Error) -> anyhow::Error {
        explain(
            e,
            Target {
                account: self.account,
                container: Some(self.container),
                key: Some(self.key),
            },
            self.dirs,
        )
    }
}

/// Options of `object create`.
pub struct CreateArgs {
    /// File to upload.
    pub file: PathBuf,
    /// Storage policy name, overriding the container's and the size rule.
    pub policy: Option<String>,
    /// Content-Type stored with the object.
    pub content_type: Option<String>,
    /// User metadata as `NAME=VALUE`.
    pub meta: Vec<String>,
    /// No progress bar.
    pub no_progress: bool,
}

/// The key an uploaded file gets when none is given: its file name.
pub fn default_key(file: &Path) -> Result<String> {
    file.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            UsageError(format!(
                "cannot make a key of {}: give one with --key",
                file.display()
            ))
            .into()
        })
}

/// Parses a storage policy name, as a usage error when it is not one.
pub fn parse_policy(text: &str) -> Result<oxio_common::StoragePolicy> {
    text.parse().map_err(|_| {
        UsageError(format!(
            "invalid storage policy {text:?}: expected SINGLE, TWOCOPIES, THREECOPIES or EC<k><m> (e.g. EC42, EC84)"
        ))
        .into()
    })
}

/// `NAME=VALUE` pairs as user metadata (at most [`MAX_USER_META_BYTES`] in all).
pub fn parse_meta(pairs: &[String]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut total = 0usize;
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| UsageError(format!("--meta {p:?} is not NAME=VALUE")))?;
        let k = k.trim().to_ascii_lowercase();
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(UsageError(format!(
                "metadata name {k:?} may hold only letters, digits, '-' and '_'"
            ))
            .into());
        }
        total += k.len() + v.len();
        out.insert(k, v.to_string());
    }
    if total > MAX_USER_META_BYTES {
        return Err(UsageError(format!(
            "user metadata is {total} bytes, more than the {MAX_USER_META_BYTES} allowed"
        ))
        .into());
    }
    Ok(out)
}

/// `object create`: streams a file into the container and shows the stored object.
pub async fn create(
    sdk: &oxio_sdk::Client,
    obj: ObjectRef<'_>,
    args: CreateArgs,
    f: Format,
) -> Result<String> {
    let policy = args.policy.as_deref().map(parse_policy).transpose()?;
    let user_meta = parse_meta(&args.meta)?;
    let path = &args.file;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| UsageError(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .await
        .with_context(|| format!("cannot read the size of {}", path.display()))?;
    if !meta.is_file() {
        return Err(UsageError(format!("{} is not a regular file", path.display())).into());
    }
    let len = meta.len();
    tracing::debug!(file = %path.display(), len, key = obj.key, "object upload");
    let bar = bytes_bar(len, args.no_progress);
    let counted = bar.clone();
    let body = tokio_util::io::ReaderStream::with_capacity(file, READ_BYTES).map(move |r| {
        if let Ok(piece) = &r {
            counted.inc(piece.len() as u64);
        }
        r
    });
    let opts = oxio_sdk::PutOptions {
        expected_len: Some(len),
        content_type: args
            .content_type
            .unwrap_or_else(|| "application/octet-stream".into()),
        user_meta,
        policy,
        ..Default::default()
    };
    let stored = sdk
        .put_object(obj.account, obj.container, obj.key, body, opts)
        .await;
    bar.finish_and_clear();
    let header = stored.map_err(|e| obj.explain(e))?;
    Ok(header_fields(obj, &header).render(f))
}

/// `object show`: the stored header of an object.
pub async fn show(sdk: &oxio_sdk::Client, obj: ObjectRef<'_>, f: Format) -> Result<String> {
    let header = sdk
        .head_object(obj.account, obj.container, obj.key)
        .await
        .map_err(|e| obj.explain(e))?;
    Ok(header_fields(obj, &header).render(f))
}

/// Every field of a header worth showing.
fn header_fields(obj: ObjectRef<'_>, h: &ContentHeader) -> Fields {
    let user: BTreeMap<&String, &String> = h.user_meta.iter().collect();
    let system: BTreeMap<&String, &String> = h.system_meta.iter().collect();
    let tags: BTreeMap<&String, &String> = h.tags.iter().map(|t| (&t.key, &t.value)).collect();
    Fields::new(vec![
        ("account", json!(obj.account)),
        ("container", json!(obj.container)),
        ("key", json!(obj.key)),
        ("size", json!(h.size)),
        ("etag", json!(h.etag)),
        ("policy", json!(h.policy)),
        ("version", json!(h.version)),
        ("mtime_ms", json!(h.mtime_ms)),
        ("content_type", json!(h.content_type)),
        ("content_id", json!(hex::encode_upper(&h.content_id))),
        ("metachunks", json!(h.metachunk_sizes.len())),
        ("chunks", json!(h.chunks.len())),
        ("metadata", json!(user)),
        ("headers", json!(system)),
        ("tags", json!(tags)),
    ])
}

/// `object delete`.
pub async fn delete(sdk: &oxio_sdk::Client, obj: ObjectRef<'_>, f: Format) -> Result<String> {
    sdk.delete_object(obj.account, obj.container, obj.key)
        .await
        .map_err(|e| obj.explain(e))?;
    Ok(Fields::new(vec![
        ("account", json!(obj.account)),
        ("container", json!(obj.container)),
        ("key", json!(obj.key)),
        ("deleted", json!(true)),
    ])
    .render(f))
}

/// `object save`: streams an object into `file`, or to stdout when it is `None` or
/// `-` (then nothing else is printed and the answer is empty). A file is written
/// beside its final name and renamed once every byte arrived and matched the ETag,
/// so a failed save never leaves a partial file under that name.
pub async fn save(
    sdk: &oxio_sdk::Client,
    obj: ObjectRef<'_>,
    file: Option<PathBuf>,
    no_progress: bool,
    f: Format,
) -> Result<String> {
    let header = sdk
        .head_object(obj.account, obj.container, obj.key)
        .await
        .map_err(|e| obj.explain(e))?;
    let (size, etag) = (header.size, header.etag.clone());
    let target = file.filter(|p| p.as_os_str() != "-");
    let Some(path) = target else {
        let mut rx = sdk.read_object(header, 0, size);
        let bar = bytes_bar(size, no_progress);
        let out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, tokio::io::stdout());
        let copied = copy_object(&mut rx, out, size, &etag, &bar, obj).await;
        bar.finish_and_clear();
        copied?;
        return Ok(String::new());
    };
    if path.is_dir() {
        return Err(UsageError(format!(
            "{} is a directory: name the file to write",
            path.display()
        ))
        .into());
    }
    let part = part_path(&path)?;
    let out = tokio::fs::File::create(&part)
        .await
        .map_err(|e| UsageError(format!("cannot create {}: {e}", part.display())))?;
    let mut rx = sdk.read_object(header, 0, size);
    let bar = bytes_bar(size, no_progress);
    let writer = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, out);
    let copied = copy_object(&mut rx, writer, size, &etag, &bar, obj).await;
    bar.finish_and_clear();
    let finished = match copied {
        Ok(()) => tokio::fs::rename(&part, &path)
            .await
            .with_context(|| format!("cannot rename {} to {}", part.display(), path.display())),
        Err(e) => Err(e),
    };
    if let Err(e) = finished {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    Ok(Fields::new(vec![
        ("account", json!(obj.account)),
        ("container", json!(obj.container)),
        ("key", json!(obj.key)),
        ("file", json!(path.display().to_string())),
        ("bytes", json!(size)),
        ("etag", json!(etag)),
    ])
    .render(f))
}

/// `DIR/.NAME.oxio-part`, where a save writes before renaming.
fn part_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| UsageError(format!("{} names no file", path.display())))?;
    Ok(path.with_file_name(format!(".{name}.oxio-part")))
}

/// Writes every piece of a read to `out`, checking the length and, for a
/// single-part ETag (an MD5), the digest.
async fn copy_object<W: AsyncWrite + Unpin>(
    rx: &mut tokio::sync::mpsc::Receiver<oxio_sdk::Result<bytes::Bytes>>,
    mut out: W,
    size: u64,
    etag: &str,
    bar: &indicatif::ProgressBar,
    obj: ObjectRef<'_>,
) -> Result<()> {
    let mut md5 = Md5::new();
    let mut got = 0u64;
    while let Some(piece) = rx.recv().await {
        let piece = piece.with_context(|| format!("reading {:?} from the grid failed", obj.key))?;
        got += piece.len() as u64;
        if got > size {
            anyhow::bail!("reading {:?} returned more than its {size} bytes", obj.key);
        }
        md5.update(&piece);
        out.write_all(&piece)
            .await
            .context("writing the object failed")?;
        bar.inc(piece.len() as u64);
    }
    if got != size {
        anyhow::bail!(
            "reading {:?} stopped after {got} of its {size} bytes",
            obj.key
        );
    }
    out.flush().await.context("writing the object failed")?;
    let single_part = etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit());
    let digest = hex::encode(md5.finalize());
    if single_part && !digest.eq_ignore_ascii_case(etag) {
        anyhow::bail!(
            "the bytes read of {:?} have MD5 {digest}, not its ETag {etag}: the object may be damaged (see `oxio object locate --check`)",
            obj.key
        );
    }
    Ok(())
}

/// `object locate`: every chunk as recorded, and with `check` its state on its
/// rawx (asked at the address the conscience lists now, else the recorded one).
pub async fn locate(
    sdk: &oxio_sdk::Client,
    obj: ObjectRef<'_>,
    check: bool,
    f: Format,
) -> Result<String> {
    let header = sdk
        .head_object(obj.account, obj.container, obj.key)
        .await
        .map_err(|e| obj.explain(e))?;
    let mut columns = vec!["position", "rawx_id", "addr", "chunk_id", "size", "hash"];
    if check {
        columns.extend(["state", "detail"]);
    }
    let states = if check {
        check_chunks(sdk, &header.chunks).await?
    } else {
        Vec::new()
    };
    let mut rows = Rows::new(&columns);
    for (i, c) in header.chunks.iter().enumerate() {
        let mut row = vec![
            json!(format!("{}.{}", c.metachunk, c.fragment)),
            json!(c.rawx_id),
            json!(c.addr),
            json!(c.chunk_id),
            json!(c.size),
            json!(c.hash),
        ];
        if let Some(s) = states.get(i) {
            row.push(json!(s.name()));
            row.push(json!(s.detail()));
        }
        rows.push(row);
    }
    let mut out = rows.render(f);
    if f == Format::Table && header.chunks.is_empty() {
        out.push_str(&format!(
            "\n({:?} is stored inline in meta2: it has no chunks)",
            obj.key
        ));
    }
    Ok(out)
}

/// The state of every chunk, in order, [`CHECK_CONCURRENCY`] HEADs at a time.
async fn check_chunks(sdk: &oxio_sdk::Client, chunks: &[ChunkRecord]) -> Result<Vec<ChunkState>> {
    let current: HashMap<String, String> = sdk
        .list_services("rawx")
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.info)
        .filter(|i| !i.addr.is_empty())
        .map(|i| (i.id, i.addr))
        .collect();
    let http = chunk_check::http_client().context("building the HTTP client")?;
    let mut states = vec![ChunkState::Ok; chunks.len()];
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0usize;
    loop {
        while tasks.len() < CHECK_CONCURRENCY && next < chunks.len() {
            let c = chunks[next].clone();
            let addr = current.get(&c.rawx_id).cloned().unwrap_or(c.addr.clone());
            let http = http.clone();
            let i = next;
            tasks.spawn(async move { (i, chunk_check::check(&http, &addr, &c).await) });
            next += 1;
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let (i, state) = done.context("a chunk check failed to run")?;
        states[i] = state;
    }
    Ok(states)
}

/// `oxio object` subcommands.
#[derive(clap::Subcommand)]
pub enum ObjectCmd {
    /// List the objects of a container.
    List {
        /// Container (bucket) name.
        container: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many objects (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Upload a file as an object (streamed; a progress bar on stderr when it is a
    /// terminal).
    Create {
        /// Container (bucket) name.
        container: String,
        /// File to upload.
        file: std::path::PathBuf,
        /// Key of the object [default: the file's name].
        #[arg(long)]
        key: Option<String>,
        /// Storage policy (SINGLE, TWOCOPIES, THREECOPIES, EC<k><m>) [default: the
        /// container's, else the grid's size rule].
        #[arg(long)]
        policy: Option<String>,
        /// Content-Type stored with the object.
        #[arg(long)]
        content_type: Option<String>,
        /// User metadata NAME=VALUE (repeat for more).
        #[arg(long = "meta", value_name = "NAME=VALUE")]
        meta: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Download an object into a file, or to stdout (streamed; the file appears only
    /// once every byte arrived and matched the ETag).
    Save {
        /// Container (bucket) name.
        container: String,
        /// Key of the object.
        key: String,
        /// File to write [default: stdout; `-` is stdout too].
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// No progress bar (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Show an object: size, ETag, policy, version, mtime, content type, metadata,
    /// chunk count.
    Show {
        /// Container (bucket) name.
        container: String,
        /// Key of the object.
        key: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Delete an object (its chunks are removed in the background).
    Delete {
        /// Container (bucket) name.
        container: String,
        /// Key of the object.
        key: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// List the chunks of an object: position (metachunk.fragment), rawx, address,
    /// chunk id, size and checksum as recorded in meta2.
    Locate {
        /// Container (bucket) name.
        container: String,
        /// Key of the object.
        key: String,
        /// Also HEAD each chunk on its rawx and add its state: ok, missing, mismatch
        /// (size or checksum differs from the record) or unreachable.
        #[arg(long)]
        check: bool,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
}

/// Runs an `object` subcommand; `account` resolves an `--account` flag.
pub async fn run(
    sdk: &oxio_sdk::Client,
    cmd: ObjectCmd,
    f: Format,
    dirs: &[String],
    account: impl Fn(Option<String>) -> String,
) -> Result<String> {
    match cmd {
        ObjectCmd::List {
            container,
            account: a,
            prefix,
            limit,
        } => {
            let account = account(a);
            let mut rows = Rows::new(&["key", "size", "etag", "policy", "mtime_ms"]);
            let mut start = String::new();
            let mut count = 0usize;
            loop {
                let page = sdk
                    .list_objects(&account, &container, &prefix, "", &start, 1000)
                    .await
                    .map_err(|e| {
                        let c = crate::container_cmd::ContainerRef {
                            account: &account,
                            name: &container,
                            dirs,
                        };
                        crate::grid_error::explain(e, crate::container_cmd::target(&c), dirs)
                    })?;
                for e in page.entries {
                    if limit > 0 && count >= limit {
                        break;
                    }
                    rows.push(vec![
                        json!(e.key),
                        json!(e.size),
                        json!(e.etag),
                        json!(e.policy),
                        json!(e.mtime_ms),
                    ]);
                    count += 1;
                }
                if !page.truncated || (limit > 0 && count >= limit) {
                    break;
                }
                start = page.next_start_after;
            }
            Ok(rows.render(f))
        }
        ObjectCmd::Create {
            container,
            file,
            key,
            policy,
            content_type,
            meta,
            no_progress,
            account: a,
        } => {
            let account = account(a);
            let key = match key {
                Some(k) => k,
                None => default_key(&file)?,
            };
            let obj = ObjectRef {
                account: &account,
                container: &container,
                key: &key,
                dirs,
            };
            let args = CreateArgs {
                file,
                policy,
                content_type,
                meta,
                no_progress,
            };
            create(sdk, obj, args, f).await
        }
        ObjectCmd::Save {
            container,
            key,
            file,
            no_progress,
            account: a,
        } => {
            let account = account(a);
            let obj = ObjectRef {
                account: &account,
                container: &container,
                key: &key,
                dirs,
            };
            save(sdk, obj, file, no_progress, f).await
        }
        ObjectCmd::Show {
            container,
            key,
            account: a,
        } => {
            let account = account(a);
            let obj = ObjectRef {
                account: &account,
                container: &container,
                key: &key,
                dirs,
            };
            show(sdk, obj, f).await
        }
        ObjectCmd::Delete {
            container,
            key,
            account: a,
        } => {
            let account = account(a);
            let obj = ObjectRef {
                account: &account,
                container: &container,
                key: &key,
                dirs,
            };
            delete(sdk, obj, f).await
        }
        ObjectCmd::Locate {
            container,
            key,
            check,
            account: a,
        } => {
            let account = account(a);
            let obj = ObjectRef {
                account: &account,
                container: &container,
                key: &key,
                dirs,
            };
            locate(sdk, obj, check, f).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_keys_parse() {
        let m = parse_meta(&["Color=blue".into(), "a_b=x=y".into()]).unwrap();
        assert_eq!(m["color"], "blue");
        assert_eq!(m["a_b"], "x=y");
        assert!(parse_meta(&["novalue".into()]).is_err());
        assert!(parse_meta(&["bad name=x".into()]).is_err());
        assert!(parse_meta(&[format!("k={}", "v".repeat(3000))]).is_err());
        assert_eq!(default_key(Path::new("/tmp/a.bin")).unwrap(), "a.bin");
        assert!(parse_policy("EC42").is_ok());
        let e = parse_policy("EC").unwrap_err();
        assert!(e.downcast_ref::<UsageError>().is_some());
        assert_eq!(
            part_path(Path::new("/d/f.bin")).unwrap(),
            Path::new("/d/.f.bin.oxio-part")
        );
    }
}
