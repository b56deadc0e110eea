//! Versioning through the real apply path: every state × operation, promotion after
//! deleting the latest version, the reverse index kept and dropped, listing of
//! versions, and the same bytes on two replicas applying the same log.

use super::*;
use crate::meta2::version_listing::{list_versions, VersionParams};
use crate::test_sm::TestSm;
use crate::types::Command;
use oxio_proto::v1::{ChunkRecord, ContainerStatsReply, ListContentVersionsReply, PutContentReply};

const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
const META2: u64 = 1002;

struct Sm(TestSm);

impl std::ops::Deref for Sm {
    type Target = TestSm;
    fn deref(&self) -> &TestSm {
        &self.0
    }
}

impl std::ops::DerefMut for Sm {
    fn deref_mut(&mut self) -> &mut TestSm {
        &mut self.0
    }
}

impl Sm {
    async fn new() -> Sm {
        Sm(TestSm::with_container(META2, CID).await)
    }

    async fn set(&mut self, state: Versioning) -> ContainerStatsReply {
        match self
            .apply(Command::SetVersioning {
                cid: CID.into(),
                state,
            })
            .await
        {
            Reply::Encoded(b) => ContainerStatsReply::decode(b.as_slice()).unwrap(),
            r => panic!("{r:?}"),
        }
    }

    /// Puts `key` with one chunk `chunk` on `rawx-<chunk>`; answers (version id,
    /// replaced chunk ids).
    async fn put(
        &mut self,
        key: &str,
        size: u64,
        chunk: &str,
        proposed: u64,
    ) -> (String, Vec<String>) {
        let h = ContentHeader {
            size,
            etag: format!("etag-{chunk}"),
            chunks: vec![ChunkRecord {
                rawx_id: format!("rawx-{chunk}"),
                chunk_id: chunk.into(),
                size,
                ..Default::default()
            }],
            ..Default::default()
        };
        let r = self
            .apply(Command::PutContent {
                cid: CID.into(),
                key: key.into(),
                header: h.encode_to_vec(),
                proposed_version: proposed,
                condition: None,
            })
            .await;
        let (id, replaced) = match r {
            Reply::Put { replaced, .. } => (
                String::new(),
                replaced.map(|b| ContentHeader::decode(b.as_slice()).unwrap()),
            ),
            Reply::Encoded(b) => {
                let r = PutContentReply::decode(b.as_slice()).unwrap();
                (r.version_id, r.replaced)
            }
            r => panic!("{r:?}"),
        };
        let replaced = replaced
            .map(|h| h.chunks.into_iter().map(|c| c.chunk_id).collect())
            .unwrap_or_default();
        (id, replaced)
    }

    async fn delete(
        &mut self,
        key: &str,
        version: Option<&str>,
        proposed: u64,
    ) -> std::result::Result<DeleteContentVersionReply, Refusal> {
        let r = self
            .apply(Command::DeleteVersion {
                cid: CID.into(),
                key: key.into(),
                version: version.map(|v| VersionRef::parse(v).unwrap()),
                clock: DeleteClock {
                    proposed_version: proposed,
                    mtime_ms: 77,
                },
            })
            .await;
        match r {
            Reply::Encoded(b) => Ok(DeleteContentVersionReply::decode(b.as_slice()).unwrap()),
            Reply::Refused(r) => Err(r),
            r => panic!("{r:?}"),
        }
    }

    fn get(&self, key: &str, version: Option<&str>) -> std::result::Result<ContentHeader, Refusal> {
        let v = version.map(|v| VersionRef::parse(v).unwrap());
        get_version(&self.sm.view(), CID, key, v).unwrap()
    }

    /// (objects, noncurrent, bytes).
    fn stats(&self) -> (u64, u64, u64) {
        let m = meta2::container_meta(&self.sm.view(), CID)
            .unwrap()
            .unwrap();
        (m.objects, m.noncurrent, m.bytes)
    }

    fn on_rawx(&self, chunk: &str) -> Vec<u64> {
        meta2::chunks_on_rawx(&self.sm.view(), &format!("rawx-{chunk}"), 10)
            .unwrap()
            .into_iter()
            .map(|e| e.version)
            .collect()
    }

    fn list(&self, p: VersionParams<'_>) -> ListContentVersionsReply {
        list_versions(&self.sm.view(), CID, &p).unwrap()
    }

    fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.sm.view().scan(b"", 100_000).unwrap().0
    }
}

fn removed_chunks(r: &DeleteContentVersionReply) -> Vec<String> {
    r.removed
        .iter()
        .flat_map(|h| h.chunks.iter().map(|c| c.chunk_id.clone()))
        .collect()
}

#[test]
fn version_ids_parse_and_name_versions() {
    assert_eq!(version_id(0x1234), "0000000000001234");
    assert_eq!(
        VersionRef::parse("0000000000001234"),
        Some(VersionRef::Id(0x1234))
    );
    assert_eq!(VersionRef::parse("null"), Some(VersionRef::Null));
    for bad in ["", "123", "000000000000123g", "00000000000012345", "NULL"] {
        assert_eq!(VersionRef::parse(bad), None, "{bad}");
    }
    let null = ContentHeader {
        version: 5,
        ..Default::default()
    };
    let five = ContentHeader {
        version: 5,
        version_id: version_id(5),
        ..Default::default()
    };
    assert!(VersionRef::Null.names(&null) && !VersionRef::Id(5).names(&null));
    assert!(VersionRef::Id(5).names(&five) && !VersionRef::Null.names(&five));
    let (k, v) = {
        let full = version_key(CID, "a/b", 42);
        let p = versions_of_container(CID).len();
        let (k, v) = parse_version_suffix(&full[p..]).unwrap();
        (k.to_vec(), v)
    };
    assert_eq!((k.as_slice(), v), (&b"a/b"[..], 42));
    assert!(
        version_key(CID, "k", 9) < version_key(CID, "k", 8),
        "newest first"
    );
}

#[tokio::test]
async fn unversioned_writes_replace_and_deletes_remove() {
    let mut sm = Sm::new().await;
    assert_eq!(sm.put("k", 10, "A", 100).await, (String::new(), vec![]));
    assert_eq!(
        sm.put("k", 20, "B", 100).await,
        (String::new(), vec!["A".to_string()])
    );
    assert!(sm.on_rawx("A").is_empty());
    assert_eq!(
        sm.get("k", None).unwrap().version_id,
        "",
        "no id shown when unversioned"
    );
    assert_eq!(sm.get("k", Some("null")).unwrap().size, 20);
    assert_eq!(sm.stats(), (1, 0, 20));
    let r = sm.delete("k", None, 500).await.unwrap();
    assert_eq!((r.version_id.as_str(), r.delete_marker), ("", false));
    assert_eq!(removed_chunks(&r), vec!["B"]);
    assert!(sm.on_rawx("B").is_empty());
    assert_eq!(sm.delete("k", None, 600).await, Err(Refusal::NoSuchKey));
    assert_eq!(sm.stats(), (0, 0, 0));
}

#[tokio::test]
async fn enabled_writes_keep_every_version_and_index_their_chunks() {
    let mut sm = Sm::new().await;
    let st = sm.set(Versioning::Enabled).await;
    assert_eq!(st.versioning, "Enabled");
    let (v1, r1) = sm.put("k", 10, "A", 100).await;
    let (v2, r2) = sm.put("k", 20, "B", 100).await;
    assert_eq!(
        (v1.as_str(), v2.as_str()),
        ("0000000000000064", "0000000000000065")
    );
    assert!(r1.is_empty() && r2.is_empty(), "nothing becomes garbage");
    assert_eq!(sm.get("k", None).unwrap().size, 20);
    assert_eq!(sm.get("k", Some(&v1)).unwrap().size, 10);
    assert_eq!(sm.get("k", Some(&v2)).unwrap().version_id, v2);
    assert_eq!(sm.get("k", Some("null")), Err(Refusal::NoSuchKey));
    assert_eq!(
        sm.get("k", Some("00000000000000ff")),
        Err(Refusal::NoSuchKey)
    );
    assert_eq!(sm.on_rawx("A"), vec![100]);
    assert_eq!(sm.on_rawx("B"), vec![101]);
    assert_eq!(sm.stats(), (1, 1, 30));
    // The plain GET path sees the latest.
    let latest = meta2::get_content(&sm.sm.view(), CID, "k")
        .unwrap()
        .unwrap();
    assert_eq!(latest.version_id, v2);
    // The container is not empty while old versions remain.
    sm.delete("k", Some(&v2), 0).await.unwrap();
    assert_eq!(
        sm.apply(Command::DropContainer { cid: CID.into() }).await,
        Reply::Refused(Refusal::NotEmpty)
    );
}

#[tokio::test]
async fn delete_marker_hides_the_key_until_it_is_removed() {
    let mut sm = Sm::new().await;
    sm.set(Versioning::Enabled).await;
    let (v1, _) = sm.put("k", 10, "A", 100).await;
    let r = sm.delete("k", None, 50).await.unwrap();
    assert!(r.delete_marker && r.removed.is_empty());
    let marker = r.version_id;
    assert_eq!(
        marker,
        version_id(101),
        "after the latest even with a late clock"
    );
    // GET without a version: the marker (the plain path: no such key).
    let latest = sm.get("k", None).unwrap();
    assert!(latest.delete_marker);
    assert_eq!(latest.mtime_ms, 77);
    assert_eq!(
        meta2::get_content(&sm.sm.view(), CID, "k").unwrap(),
        Err(Refusal::NoSuchKey)
    );
    assert_eq!(sm.get("k", Some(&v1)).unwrap().size, 10);
    assert_eq!(sm.stats(), (0, 2, 10));
    assert_eq!(
        sm.on_rawx("A"),
        vec![100],
        "the hidden version keeps its chunks"
    );
    // A second delete adds a second marker.
    let r2 = sm.delete("k", None, 0).await.unwrap();
    assert_eq!(r2.version_id, version_id(102));
    // Removing both markers brings the object back.
    let r = sm.delete("k", Some(&r2.version_id), 0).await.unwrap();
    assert!(r.delete_marker && r.removed.is_empty());
    assert!(sm.get("k", None).unwrap().delete_marker);
    sm.delete("k", Some(&marker), 0).await.unwrap();
    let back = sm.get("k", None).unwrap();
    assert_eq!(
        (back.version_id.as_str(), back.delete_marker),
        (v1.as_str(), false)
    );
    assert_eq!(sm.stats(), (1, 0, 10));
    // A delete marker on a key that never existed is still created.
    assert!(sm.delete("never", None, 0).await.unwrap().delete_marker);
}

#[tokio::test]
async fn deleting_the_latest_version_promotes_the_next_one() {
    let mut sm = Sm::new().await;
    sm.set(Versioning::Enabled).await;
    let (v1, _) = sm.put("k", 10, "A", 100).await;
    let (v2, _) = sm.put("k", 20, "B", 200).await;
    let (v3, _) = sm.put("k", 30, "C", 300).await;
    // A middle version goes: its chunks are garbage, the latest stays.
    let r = sm.delete("k", Some(&v2), 0).await.unwrap();
    assert_eq!(
        (r.version_id.as_str(), r.delete_marker),
        (v2.as_str(), false)
    );
    assert_eq!(removed_chunks(&r), vec!["B"]);
    assert!(sm.on_rawx("B").is_empty());
    assert_eq!(sm.get("k", None).unwrap().version_id, v3);
    // The latest goes: the next newest becomes the latest.
    let r = sm.delete("k", Some(&v3), 0).await.unwrap();
    assert_eq!(removed_chunks(&r), vec!["C"]);
    assert_eq!(sm.get("k", None).unwrap().version_id, v1);
    assert_eq!(sm.stats(), (1, 0, 10));
    assert_eq!(sm.delete("k", Some(&v3), 0).await, Err(Refusal::NoSuchKey));
    sm.delete("k", Some(&v1), 0).await.unwrap();
    assert_eq!(sm.get("k", None), Err(Refusal::NoSuchKey));
    assert_eq!(sm.stats(), (0, 0, 0));
    assert_eq!(
        sm.apply(Command::DropContainer { cid: CID.into() }).await,
        Reply::Done
    );
}

#[tokio::test]
async fn suspended_writes_replace_only_the_null_version() {
    let mut sm = Sm::new().await;
    // Written while unversioned: the null version.
    sm.put("k", 5, "U", 10).await;
    sm.set(Versioning::Enabled).await;
    let (v1, _) = sm.put("k", 10, "A", 100).await;
    assert_eq!(sm.get("k", Some("null")).unwrap().size, 5);
    assert_eq!(sm.get("k", Some("null")).unwrap().version_id, "null");
    let st = sm.set(Versioning::Suspended).await;
    assert_eq!(st.versioning, "Suspended");
    // The null version (older, not the latest) is replaced; v1 stays.
    let (id, replaced) = sm.put("k", 20, "B", 200).await;
    assert_eq!((id.as_str(), replaced), ("null", vec!["U".to_string()]));
    assert!(sm.on_rawx("U").is_empty());
    // Now the null version is the latest: replaced again.
    let (_, replaced) = sm.put("k", 30, "C", 300).await;
    assert_eq!(replaced, vec!["B"]);
    assert_eq!(sm.get("k", None).unwrap().size, 30);
    assert_eq!(sm.get("k", Some(&v1)).unwrap().size, 10);
    assert_eq!(sm.stats(), (1, 1, 40));
    // DELETE: a null marker replaces the null version.
    let r = sm.delete("k", None, 0).await.unwrap();
    assert_eq!((r.version_id.as_str(), r.delete_marker), ("null", true));
    assert_eq!(removed_chunks(&r), vec!["C"]);
    assert!(sm.get("k", None).unwrap().delete_marker);
    assert_eq!(sm.stats(), (0, 2, 10));
    // A put replaces the null marker (no garbage), v1 stays.
    let (_, replaced) = sm.put("k", 40, "D", 0).await;
    assert!(replaced.is_empty());
    assert_eq!(sm.get("k", None).unwrap().size, 40);
    assert_eq!(sm.stats(), (1, 1, 50));
    assert_eq!(sm.on_rawx("A").len(), 1);
    assert_eq!(sm.on_rawx("D").len(), 1);
    // Deleting the null version by id promotes v1.
    sm.delete("k", Some("null"), 0).await.unwrap();
    assert_eq!(sm.get("k", None).unwrap().version_id, v1);
    // Enabled again: new versions are added, the null slot is empty.
    sm.set(Versioning::Enabled).await;
    let (v5, replaced) = sm.put("k", 1, "E", 0).await;
    assert!(replaced.is_empty() && v5 != "null");
    assert_eq!(sm.get("k", Some("null")), Err(Refusal::NoSuchKey));
}

#[tokio::test]
async fn keys_with_nul_are_refused_once_versioned() {
    let mut sm = Sm::new().await;
    sm.set(Versioning::Enabled).await;
    let r = sm
        .apply(Command::PutContent {
            cid: CID.into(),
            key: "a\0b".into(),
            header: ContentHeader::default().encode_to_vec(),
            proposed_version: 1,
            condition: None,
        })
        .await;
    assert_eq!(r, Reply::Refused(Refusal::Invalid));
    assert_eq!(sm.delete("a\0b", None, 1).await, Err(Refusal::Invalid));
}

#[tokio::test]
async fn administrative_delete_removes_the_latest_and_promotes() {
    let mut sm = Sm::new().await;
    sm.set(Versioning::Enabled).await;
    let (v1, _) = sm.put("k", 10, "A", 100).await;
    sm.put("k", 20, "B", 200).await;
    let r = sm
        .apply(Command::DeleteContent {
            cid: CID.into(),
            key: "k".into(),
        })
        .await;
    assert!(matches!(r, Reply::Deleted(_)), "{r:?}");
    assert!(sm.on_rawx("B").is_empty());
    assert_eq!(sm.get("k", None).unwrap().version_id, v1);
}

fn flat(r: &ListContentVersionsReply) -> Vec<(String, String, bool, bool)> {
    r.versions
        .iter()
        .map(|v| {
            (
                v.key.clone(),
                v.version_id.clone(),
                v.is_latest,
                v.delete_marker,
            )
        })
        .collect()
}

fn p<'a>(
    prefix: &'a str,
    delimiter: &'a str,
    key: &'a str,
    vid: &'a str,
    max: u32,
) -> VersionParams<'a> {
    VersionParams {
        prefix,
        delimiter,
        key_marker: key,
        version_id_marker: vid,
        max_keys: max,
    }
}

#[tokio::test]
async fn versions_are_listed_by_key_newest_first_and_page_exactly() {
    let mut sm = Sm::new().await;
    sm.put("b", 1, "B0", 10).await; // null version from before versioning
    sm.set(Versioning::Enabled).await;
    let (a1, _) = sm.put("a", 1, "A1", 100).await;
    let (a2, _) = sm.put("a", 2, "A2", 200).await;
    let (a3, _) = sm.put("a", 3, "A3", 300).await;
    let mb = sm.delete("b", None, 400).await.unwrap().version_id;
    let (d1, _) = sm.put("d/1", 4, "D1", 500).await;
    let (d2, _) = sm.put("d/2", 5, "D2", 600).await;
    let (e1, _) = sm.put("e", 6, "E1", 700).await;
    let all = sm.list(p("", "", "", "", 0));
    let s = |x: &str| x.to_string();
    let want = vec![
        (s("a"), a3.clone(), true, false),
        (s("a"), a2.clone(), false, false),
        (s("a"), a1.clone(), false, false),
        (s("b"), mb.clone(), true, true),
        (s("b"), s("null"), false, false),
        (s("d/1"), d1.clone(), true, false),
        (s("d/2"), d2.clone(), true, false),
        (s("e"), e1.clone(), true, false),
    ];
    assert_eq!(flat(&all), want);
    assert!(!all.truncated);
    assert_eq!(all.versions[0].size, 3);
    assert_eq!(all.versions[0].etag, "etag-A3");

    // Paging one entry at a time walks the same list, across keys and versions.
    let mut seen = Vec::new();
    let (mut km, mut vm) = (String::new(), String::new());
    for _ in 0..20 {
        let page = sm.list(p("", "", &km, &vm, 1));
        seen.extend(flat(&page));
        if !page.truncated {
            break;
        }
        assert_eq!(page.versions.len(), 1);
        km = page.next_key_marker;
        vm = page.next_version_id_marker;
    }
    assert_eq!(seen, want);
    // Pages of 3 as well.
    let mut seen = Vec::new();
    let (mut km, mut vm) = (String::new(), String::new());
    for _ in 0..20 {
        let page = sm.list(p("", "", &km, &vm, 3));
        seen.extend(flat(&page));
        if !page.truncated {
            break;
        }
        km = page.next_key_marker;
        vm = page.next_version_id_marker;
    }
    assert_eq!(seen, want);

    // Delimiter: d/ rolls up; paging after the common prefix skips it.
    let r = sm.list(p("", "/", "", "", 0));
    assert_eq!(r.common_prefixes, vec!["d/"]);
    assert_eq!(r.versions.len(), 6);
    let r = sm.list(p("", "/", "b", &mb, 2));
    assert_eq!(flat(&r), vec![(s("b"), s("null"), false, false)]);
    assert_eq!(r.common_prefixes, vec!["d/"]);
    assert!(r.truncated);
    assert_eq!(
        (
            r.next_key_marker.as_str(),
            r.next_version_id_marker.as_str()
        ),
        ("d/", "")
    );
    let r = sm.list(p("", "/", "d/", "", 2));
    assert_eq!(flat(&r), vec![(s("e"), e1, true, false)]);
    assert!(!r.truncated);
    // Prefix and key marker without a version: keys after it.
    let r = sm.list(p("d/", "", "", "", 0));
    assert_eq!(r.versions.len(), 2);
    let r = sm.list(p("", "", "a", "", 0));
    assert_eq!(r.versions[0].key, "b");
    // Plain listings show only the latest live objects.
    let view = sm.sm.view();
    let mut cursor = view.cursor(&sm::contents_of(CID));
    let plain = crate::listing::list(&mut cursor, &Default::default(), |k, _| {
        Ok(oxio_proto::v1::ListEntry {
            key: String::from_utf8_lossy(k).into_owned(),
            ..Default::default()
        })
    })
    .unwrap();
    let keys: Vec<String> = plain.entries.into_iter().map(|e| e.key).collect();
    assert_eq!(keys, vec!["a", "d/1", "d/2", "e"]);
}

#[tokio::test]
async fn replicas_applying_the_same_log_hold_the_same_bytes() {
    async fn run(sm: &mut Sm) {
        sm.put("x", 1, "X0", 5).await;
        sm.set(Versioning::Enabled).await;
        sm.put("x", 2, "X1", 10).await;
        sm.put("x", 3, "X2", 10).await;
        sm.delete("x", None, 10).await.unwrap();
        sm.set(Versioning::Suspended).await;
        sm.put("x", 4, "X3", 10).await;
        sm.put("y", 5, "Y0", 10).await;
        sm.delete("y", None, 10).await.unwrap();
        sm.delete("x", Some("null"), 0).await.unwrap();
    }
    let (mut a, mut b) = (Sm::new().await, Sm::new().await);
    run(&mut a).await;
    run(&mut b).await;
    let (da, db) = (a.dump(), b.dump());
    assert!(!da.is_empty());
    assert_eq!(da, db);
}
