//! The persisted index: a snapshot of [`Index`] in the data dir, tied to the
//! commit it describes, so a restart reads only the commits after that one
//! instead of the whole history.
//!
//! The file is `<data dir>/index.snapshot`: a header (magic, format
//! version, body length, CRC-32 of the body) and a body holding the remote
//! and branch it was read from, the tip, a table of the strings it uses and
//! the records. It is written to a temporary file, synced, and renamed over
//! the old one, so a crash at any point leaves the old snapshot or the new
//! one, never a torn one (a power cut too, with `--fsync true`, the
//! default; without it a torn file is possible, and refused by its CRC). Loading refuses (with the reason, for the log)
//! a file that is missing, truncated, corrupt, of another format or of
//! another repository; the caller then reads the history instead. Whether
//! the tip is still in the remote's history is the caller's check: this
//! module knows nothing of git beyond object ids.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::Oid;

use super::index::{BuildFolder, BuildRecord, Index, ReleaseKind, ReleaseRecord};

/// The snapshot's file name in the data dir.
pub(crate) const FILE_NAME: &str = "index.snapshot";
const MAGIC: &[u8; 8] = b"RMINDEX\0";
/// Bumped whenever the body's layout or meaning changes; an older file is
/// then read as "another format" and rebuilt from history.
/// 2: builds record the folder they are stored under (`builds/` or
/// `artifacts/`), and release folders changed without changing their
/// artifact are edits, not releases.
pub(crate) const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Which repository a snapshot describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The remote, as people name it (no credentials).
    pub(crate) remote: String,
    /// The config repository's branch.
    pub(crate) branch: String,
}

/// A loaded snapshot.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The commit the index describes (everything up to and including it).
    pub(crate) tip: Oid,
    /// The index.
    pub(crate) index: Index,
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// There is none yet.
    #[error("there is no snapshot yet")]
    Missing,
    /// It cannot be read.
    #[error("the snapshot cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// It is shorter than it says, or its checksum does not match.
    #[error("the snapshot is truncated or corrupt ({0})")]
    Corrupt(&'static str),
    /// It was written by another version of the format.
    #[error("the snapshot has format version {found}, this server reads {FORMAT_VERSION}")]
    Format {
        /// The version found.
        found: u32,
    },
    /// It describes another remote or branch.
    #[error("the snapshot describes {found_remote} ({found_branch}), not {remote} ({branch})")]
    Foreign {
        /// Its remote.
        found_remote: String,
        /// Its branch.
        found_branch: String,
        /// The configured remote.
        remote: String,
        /// The configured branch.
        branch: String,
    },
}

/// Path of the snapshot in `data_dir`.
pub(crate) fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Writes `index` (describing history up to `tip`) as the snapshot in
/// `data_dir`, atomically. `durable` syncs the file and its folder. (The
/// server encodes under the index's lock and writes outside it.)
#[cfg(test)]
fn save(
    data_dir: &Path,
    origin: &Origin,
    tip: Oid,
    index: &Index,
    durable: bool,
) -> std::io::Result<u64> {
    write(data_dir, &encode_file(origin, tip, index), durable)
}

/// The snapshot file's bytes for `index` at `tip` (done under the lock that
/// guards the index; [`write`] can then go on without it).
pub(crate) fn encode_file(origin: &Origin, tip: Oid, index: &Index) -> Vec<u8> {
    let body = encode(origin, tip, index);
    let mut file_bytes = Vec::with_capacity(HEADER_LEN + body.len());
    file_bytes.extend_from_slice(MAGIC);
    file_bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file_bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file_bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    file_bytes.extend_from_slice(&body);
    file_bytes
}

/// Writes snapshot bytes from [`encode_file`] as the snapshot in
/// `data_dir`, atomically; returns their length.
pub(crate) fn write(data_dir: &Path, file_bytes: &[u8], durable: bool) -> std::io::Result<u64> {
    let final_path = path_in(data_dir);
    let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(file_bytes)?;
        if durable {
            file.sync_all()?;
        }
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    super::crash_point("snapshot-written");
    std::fs::rename(&temporary, &final_path)?;
    super::crash_point("snapshot-renamed");
    if durable {
        std::fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(file_bytes.len() as u64)
}

/// Loads the snapshot in `data_dir`, if there is a usable one for `origin`.
pub(crate) fn load(data_dir: &Path, origin: &Origin) -> Result<Snapshot, SnapshotError> {
    // A temporary file is what a crash mid-write left: never the snapshot.
    let _ = std::fs::remove_file(data_dir.join(format!("{FILE_NAME}.tmp")));
    let bytes = match std::fs::read(path_in(data_dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SnapshotError::Missing),
        Err(e) => return Err(SnapshotError::Io(e)),
    };
    decode_file(&bytes, origin)
}

fn decode_file(bytes: &[u8], origin: &Origin) -> Result<Snapshot, SnapshotError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(SnapshotError::Corrupt("no snapshot header"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Format { found: version });
    }
    let length = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let checksum = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != length {
        return Err(SnapshotError::Corrupt(
            "its length does not match its header",
        ));
    }
    if crc32fast::hash(body) != checksum {
        return Err(SnapshotError::Corrupt("its checksum does not match"));
    }
    let mut reader = Reader { bytes: body, at: 0 };
    decode(&mut reader, origin).ok_or(SnapshotError::Corrupt("its records do not parse"))?
}

/// Collects the strings an index uses, each once.
#[derive(Default)]
struct StringTable<'a> {
    positions: HashMap<&'a str, u32>,
    strings: Vec<&'a str>,
}

impl<'a> StringTable<'a> {
    fn position(&mut self, text: &'a str) -> u32 {
        if let Some(&position) = self.positions.get(text) {
            return position;
        }
        let position = self.strings.len() as u32;
        self.strings.push(text);
        self.positions.insert(text, position);
        position
    }
}

fn encode(origin: &Origin, tip: Oid, index: &Index) -> Vec<u8> {
    let mut table = StringTable::default();
    let mut records = Vec::with_capacity(index.record_count() * 44);
    let mut services: Vec<_> = index.services.iter().collect();
    services.sort_by(|a, b| a.0.cmp(b.0));
    put_u32(&mut records, services.len() as u32);
    for (service, history) in services {
        put_u32(&mut records, table.position(service));
        put_u32(&mut records, history.builds.len() as u32);
        for build in &history.builds {
            put_u32(&mut records, table.position(&build.artifact_id));
            put_u32(&mut records, table.position(&build.branch));
            records.push(build.folder.code());
            records.extend_from_slice(build.commit.as_bytes());
            records.extend_from_slice(&build.time.to_le_bytes());
        }
        let mut environments: Vec<_> = history.releases.iter().collect();
        environments.sort_by(|a, b| a.0.cmp(b.0));
        put_u32(&mut records, environments.len() as u32);
        for (environment, releases) in environments {
            put_u32(&mut records, table.position(environment));
            put_u32(&mut records, releases.len() as u32);
            for release in releases {
                put_u32(&mut records, table.position(&release.artifact_id));
                put_u32(&mut records, table.position(&release.namespace));
                records.push(release.kind.code());
                records.extend_from_slice(release.commit.as_bytes());
                records.extend_from_slice(&release.time.to_le_bytes());
            }
        }
    }
    let mut requests: Vec<_> = index.requests.iter().collect();
    requests.sort();
    put_u32(&mut records, requests.len() as u32);
    for (request, commit) in requests {
        put_str(&mut records, request);
        records.extend_from_slice(commit.as_bytes());
    }
    let mut body = Vec::with_capacity(records.len() + table.strings.len() * 48 + 128);
    put_str(&mut body, &origin.remote);
    put_str(&mut body, &origin.branch);
    body.extend_from_slice(tip.as_bytes());
    body.extend_from_slice(&index.commits.to_le_bytes());
    put_u32(&mut body, table.strings.len() as u32);
    for text in &table.strings {
        put_str(&mut body, text);
    }
    body.extend_from_slice(&records);
    body
}

fn decode(r: &mut Reader<'_>, origin: &Origin) -> Option<Result<Snapshot, SnapshotError>> {
    let remote = r.str()?.to_string();
    let branch = r.str()?.to_string();
    if remote != origin.remote || branch != origin.branch {
        return Some(Err(SnapshotError::Foreign {
            found_remote: remote,
            found_branch: branch,
            remote: origin.remote.clone(),
            branch: origin.branch.clone(),
        }));
    }
    let tip = r.oid()?;
    let mut index = Index::default();
    index.commits = r.u64()?;
    let count = r.u32()? as usize;
    let mut strings: Vec<Arc<str>> = Vec::with_capacity(count.min(r.left()));
    for _ in 0..count {
        let text = r.str()?;
        strings.push(index.intern(text));
    }
    let string =
        |r: &mut Reader<'_>| -> Option<Arc<str>> { strings.get(r.u32()? as usize).cloned() };
    for _ in 0..r.u32()? {
        let service = string(r)?;
        for _ in 0..r.u32()? {
            let record = BuildRecord {
                artifact_id: string(r)?,
                branch: string(r)?,
                folder: BuildFolder::from_code(r.u8()?)?,
                commit: r.oid()?,
                time: r.i64()?,
            };
            index.add_build(service.clone(), record);
        }
        for _ in 0..r.u32()? {
            let environment = string(r)?;
            for _ in 0..r.u32()? {
                let record = ReleaseRecord {
                    artifact_id: string(r)?,
                    namespace: string(r)?,
                    kind: ReleaseKind::from_code(r.u8()?),
                    commit: r.oid()?,
                    time: r.i64()?,
                };
                index.add_release(service.clone(), environment.clone(), record);
            }
        }
    }
    for _ in 0..r.u32()? {
        let request = r.str()?;
        let commit = r.oid()?;
        index.requests.insert(request.into(), commit);
    }
    if r.left() != 0 {
        return None;
    }
    Some(Ok(Snapshot { tip, index }))
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_u32(out, text.len() as u32);
    out.extend_from_slice(text.as_bytes());
}

/// Reads the body; every method is `None` past its end.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn oid(&mut self) -> Option<Oid> {
        self.take(20).and_then(|b| Oid::from_bytes(b).ok())
    }

    fn str(&mut self) -> Option<&'b str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            remote: "/srv/config.git".into(),
            branch: "master".into(),
        }
    }

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn sample() -> Index {
        let mut index = Index::default();
        for (n, service) in ["api", "web"].into_iter().enumerate() {
            let service = index.intern(service);
            for b in 0..3u8 {
                let record = BuildRecord {
                    artifact_id: index.intern(&format!("master-{service}-{b}")),
                    branch: index.intern(if b == 2 { "feature/x" } else { "master" }),
                    folder: if b == 1 {
                        BuildFolder::Artifacts
                    } else {
                        BuildFolder::Builds
                    },
                    commit: oid(10 * n as u8 + b),
                    time: 1_000 + b as i64,
                };
                index.add_build(service.clone(), record);
            }
            for environment in ["dev", "prod"] {
                let environment = index.intern(environment);
                for (b, kind) in [
                    ReleaseKind::Branch,
                    ReleaseKind::Rollback,
                    ReleaseKind::Edit,
                ]
                .into_iter()
                .enumerate()
                {
                    let record = ReleaseRecord {
                        artifact_id: index.intern(&format!("master-{service}-{b}")),
                        namespace: index.intern("payments"),
                        kind,
                        commit: oid(100 + b as u8),
                        time: 2_000 + b as i64,
                    };
                    index.add_release(service.clone(), environment.clone(), record);
                }
            }
        }
        index.requests.insert("req-1".into(), oid(7));
        index.commits = 42;
        index
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let index = sample();
        save(dir.path(), &origin(), oid(9), &index, true).unwrap();
        let loaded = load(dir.path(), &origin()).unwrap();
        assert_eq!(loaded.tip, oid(9));
        assert_eq!(loaded.index, index);
        assert!(!dir.path().join("index.snapshot.tmp").exists());
    }

    #[test]
    fn every_damaged_file_is_refused_never_misread() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &origin(), oid(9), &sample(), false).unwrap();
        let good = std::fs::read(path_in(dir.path())).unwrap();
        // Cut anywhere: refused.
        for cut in [
            0,
            5,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 10,
            good.len() - 1,
        ] {
            std::fs::write(path_in(dir.path()), &good[..cut]).unwrap();
            assert!(
                matches!(load(dir.path(), &origin()), Err(SnapshotError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        // A flipped bit anywhere in the body: refused by the checksum.
        for at in [HEADER_LEN, HEADER_LEN + 100, good.len() - 3] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(path_in(dir.path()), &bad).unwrap();
            assert!(matches!(
                load(dir.path(), &origin()),
                Err(SnapshotError::Corrupt(_))
            ));
        }
        // Another format version.
        let mut old = good.clone();
        old[8..12].copy_from_slice(&0u32.to_le_bytes());
        std::fs::write(path_in(dir.path()), &old).unwrap();
        assert!(matches!(
            load(dir.path(), &origin()),
            Err(SnapshotError::Format { found: 0 })
        ));
        // Another repository.
        std::fs::write(path_in(dir.path()), &good).unwrap();
        let other = Origin {
            remote: "/srv/other.git".into(),
            branch: "master".into(),
        };
        assert!(matches!(
            load(dir.path(), &other),
            Err(SnapshotError::Foreign { .. })
        ));
        std::fs::remove_file(path_in(dir.path())).unwrap();
        assert!(matches!(
            load(dir.path(), &origin()),
            Err(SnapshotError::Missing)
        ));
    }

    #[test]
    fn a_temporary_file_left_by_a_crash_is_not_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &origin(), oid(9), &sample(), false).unwrap();
        std::fs::write(dir.path().join("index.snapshot.tmp"), b"half a snapshot").unwrap();
        let loaded = load(dir.path(), &origin()).unwrap();
        assert_eq!(loaded.tip, oid(9));
        assert!(!dir.path().join("index.snapshot.tmp").exists());
    }
}
