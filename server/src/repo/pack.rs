//! Packs of the writer's new objects. A batch's objects are kept in memory
//! (libgit2's mempack) and then written as one pack file, to the mirror and
//! to a local remote, instead of one loose file per object. libgit2's own
//! pack builder searches for deltas, which costs far more than the handful
//! of small objects a release makes; this writer stores them whole.

use std::collections::{HashMap, HashSet};

use git2::{ObjectType, Oid, Repository, Tree};

/// An object to pack, with the previous version of the same path when
/// there is one (a candidate delta base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackObject {
    /// The object.
    pub(crate) oid: Oid,
    /// The tree at the same path in the parent commit.
    pub(crate) base: Option<Oid>,
}

/// The objects a chain of new commits adds: each commit and every tree and
/// blob that differs from the same path in its first parent. Objects that
/// also exist elsewhere may be included; a pack may repeat them.
pub(crate) fn new_objects(
    repo: &Repository,
    commits: &[Oid],
) -> Result<Vec<PackObject>, git2::Error> {
    let mut seen = HashSet::new();
    let mut objects = Vec::new();
    for &oid in commits {
        let commit = repo.find_commit(oid)?;
        let parent_tree = match commit.parent(0) {
            Ok(parent) => Some(parent.tree()?),
            Err(_) => None,
        };
        collect_tree(
            repo,
            &commit.tree()?,
            parent_tree.as_ref(),
            &mut seen,
            &mut objects,
        )?;
        if seen.insert(oid) {
            objects.push(PackObject { oid, base: None });
        }
    }
    Ok(objects)
}

fn collect_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    before: Option<&Tree<'_>>,
    seen: &mut HashSet<Oid>,
    objects: &mut Vec<PackObject>,
) -> Result<(), git2::Error> {
    if before.is_some_and(|b| b.id() == tree.id()) || !seen.insert(tree.id()) {
        return Ok(());
    }
    objects.push(PackObject {
        oid: tree.id(),
        base: before.map(|b| b.id()),
    });
    for entry in tree.iter() {
        let previous = before.and_then(|b| b.get_name_bytes(entry.name_bytes()));
        if previous.as_ref().is_some_and(|p| p.id() == entry.id()) {
            continue;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id())?;
                let before_sub = match previous {
                    Some(p) if p.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(p.id())?),
                    _ => None,
                };
                collect_tree(repo, &sub, before_sub.as_ref(), seen, objects)?;
            }
            Some(ObjectType::Blob) if seen.insert(entry.id()) => {
                objects.push(PackObject {
                    oid: entry.id(),
                    base: None,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// A version 2 pack of `objects`. A tree whose base (the same path's
/// previous version) is earlier in the same pack is stored as a delta
/// against it: consecutive commits of a batch rewrite the same large
/// folders (`<env>/releases/<namespace>`) one entry at a time, so the delta
/// is a few dozen bytes where the whole tree is tens of kilobytes.
pub(crate) fn build(repo: &Repository, objects: &[PackObject]) -> Result<Pack, git2::Error> {
    let odb = repo.odb()?;
    let mut pack = PackWriter::with_capacity(objects.len());
    // Offset, contents and delta depth of each tree written so far, by id.
    let mut written: HashMap<Oid, (usize, Vec<u8>, u32)> = HashMap::new();
    for object in objects {
        let read = odb.read(object.oid)?;
        let data = read.data();
        // A tree's previous version is the base of the next one only: its
        // bytes are let go once used, so a chain of many versions of a
        // large tree holds one at a time. Chains stop at git's usual depth,
        // or reading the last version of a long fetch would replay them all.
        let base = object
            .base
            .and_then(|b| written.remove(&b))
            .filter(|(_, _, depth)| *depth < MAX_DELTA_DEPTH);
        let (offset, depth) = match base {
            Some((base_offset, base_data, depth)) => (
                pack.add_delta(object.oid, base_offset, &base_data, data)?,
                depth + 1,
            ),
            None => (pack.add_whole(object.oid, read.kind(), data)?, 0),
        };
        if read.kind() == ObjectType::Tree {
            written.insert(object.oid, (offset, data.to_vec(), depth));
        }
    }
    pack.finish()
}

/// Longest chain of deltas a pack gets, as git's default `--depth`.
const MAX_DELTA_DEPTH: u32 = 50;

/// Writes objects one after the other as a version 2 pack, whole or as a
/// delta of an object written before (OFS_DELTA), and indexes them: the
/// caller knows each object's id, so nothing is hashed or inflated again.
/// Also what the benchmark's generator writes its repositories with.
pub struct PackWriter {
    bytes: Vec<u8>,
    entries: Vec<(Oid, usize, u32)>,
    compressor: flate2::Compress,
}

impl PackWriter {
    /// An empty pack with room for about `objects` small objects.
    pub fn with_capacity(objects: usize) -> Self {
        let mut bytes = Vec::with_capacity(256 + objects * 512);
        bytes.extend_from_slice(b"PACK");
        bytes.extend_from_slice(&2u32.to_be_bytes());
        // The count is filled in by `finish`.
        bytes.extend_from_slice(&0u32.to_be_bytes());
        PackWriter {
            bytes,
            entries: Vec::with_capacity(objects),
            compressor: flate2::Compress::new(flate2::Compression::fast(), true),
        }
    }

    /// Adds object `oid` (of `kind`, with `data`) whole; returns its offset.
    pub fn add_whole(
        &mut self,
        oid: Oid,
        kind: ObjectType,
        data: &[u8],
    ) -> Result<usize, git2::Error> {
        let offset = self.bytes.len();
        push_header(&mut self.bytes, type_code(kind)?, data.len());
        compress(&mut self.compressor, &mut self.bytes, data)?;
        self.index_last(oid, offset);
        Ok(offset)
    }

    /// Adds object `oid` of `kind`, `len` bytes long, whose zlib stream
    /// `compressed` the caller made (see [`zlib`]); returns its offset.
    pub fn add_compressed(
        &mut self,
        oid: Oid,
        kind: ObjectType,
        len: usize,
        compressed: &[u8],
    ) -> Result<usize, git2::Error> {
        let offset = self.bytes.len();
        push_header(&mut self.bytes, type_code(kind)?, len);
        self.bytes.extend_from_slice(compressed);
        self.index_last(oid, offset);
        Ok(offset)
    }

    /// Adds object `oid` with contents `data` as a delta of the object with
    /// contents `base` written at `base_offset`; returns its offset.
    pub fn add_delta(
        &mut self,
        oid: Oid,
        base_offset: usize,
        base: &[u8],
        data: &[u8],
    ) -> Result<usize, git2::Error> {
        let offset = self.bytes.len();
        let delta = delta(base, data);
        push_header(&mut self.bytes, 6, delta.len());
        push_offset(&mut self.bytes, offset - base_offset);
        compress(&mut self.compressor, &mut self.bytes, &delta)?;
        self.index_last(oid, offset);
        Ok(offset)
    }

    fn index_last(&mut self, oid: Oid, offset: usize) {
        let mut crc = flate2::Crc::new();
        crc.update(&self.bytes[offset..]);
        self.entries.push((oid, offset, crc.sum()));
    }

    /// Objects added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished pack and its index.
    pub fn finish(mut self) -> Result<Pack, git2::Error> {
        let count = u32::try_from(self.entries.len())
            .map_err(|_| git2::Error::from_str("too many objects"))?;
        self.bytes[8..12].copy_from_slice(&count.to_be_bytes());
        let checksum = sha1_smol::Sha1::from(&self.bytes).digest().bytes();
        self.bytes.extend_from_slice(&checksum);
        let index = index_of(&mut self.entries, &checksum)?;
        Ok(Pack {
            bytes: self.bytes,
            index,
            name: checksum.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// A pack and its index, ready to be stored.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The `.pack` file.
    pub bytes: Vec<u8>,
    /// The `.idx` file (version 2).
    pub index: Vec<u8>,
    /// The hex checksum that names both files.
    pub name: String,
}

/// The version 2 index of a pack whose entries (id, offset, CRC-32 of the
/// packed bytes) are known: written here because the writer knows them,
/// instead of having libgit2's indexer inflate and hash everything again.
fn index_of(
    entries: &mut [(Oid, usize, u32)],
    checksum: &[u8; 20],
) -> Result<Vec<u8>, git2::Error> {
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut index = Vec::with_capacity(8 + 1024 + entries.len() * 28 + 40);
    index.extend_from_slice(&[0xff, b't', b'O', b'c']);
    index.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (oid, _, _) in entries.iter() {
        fanout[oid.as_bytes()[0] as usize] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        index.extend_from_slice(&running.to_be_bytes());
    }
    for (oid, _, _) in entries.iter() {
        index.extend_from_slice(oid.as_bytes());
    }
    for (_, _, crc) in entries.iter() {
        index.extend_from_slice(&crc.to_be_bytes());
    }
    // Offsets past 2 GiB go to the large-offset table (only the
    // benchmark's generator writes packs that big).
    let mut large = Vec::new();
    for (_, offset, _) in entries.iter() {
        match u32::try_from(*offset).ok().filter(|o| *o < 0x8000_0000) {
            Some(small) => index.extend_from_slice(&small.to_be_bytes()),
            None => {
                let slot = u32::try_from(large.len())
                    .map_err(|_| git2::Error::from_str("too many large offsets"))?;
                index.extend_from_slice(&(0x8000_0000 | slot).to_be_bytes());
                large.push(*offset as u64);
            }
        }
    }
    for offset in large {
        index.extend_from_slice(&offset.to_be_bytes());
    }
    index.extend_from_slice(checksum);
    let own = sha1_smol::Sha1::from(&index).digest().bytes();
    index.extend_from_slice(&own);
    Ok(index)
}

/// Whether pack files (and, through libgit2, ref updates) are flushed to
/// disk before a write is acknowledged; see [`set_durable`].
static DURABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Chooses whether acknowledged writes survive a power loss: files are
/// fsynced (the pack, its index, their folder) before they count, and
/// libgit2 fsyncs the ref updates and objects it writes. On by default;
/// `--fsync false` trades that for speed (`make bench` measures both).
pub(crate) fn set_durable(durable: bool) {
    DURABLE.store(durable, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: sets a libgit2 global to 0 or 1; read when files are written.
    unsafe {
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as std::ffi::c_int,
            std::ffi::c_int::from(durable),
        );
    }
}

/// Whether writes are flushed to disk before they count (`--fsync`).
pub(crate) fn durable() -> bool {
    DURABLE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Stores `pack` in the `objects/pack` folder of the repository at
/// `git_dir`: temporary files renamed into place, the index last (readers
/// look for indexes, then open their pack). A failure (a full disk) leaves
/// no temporary file behind.
///
/// `place` names the repository (`mirror`, `remote`) for the crash points.
pub(crate) fn store(git_dir: &std::path::Path, pack: &Pack, place: &str) -> std::io::Result<()> {
    let durable = DURABLE.load(std::sync::atomic::Ordering::Relaxed);
    let dir = git_dir.join("objects").join("pack");
    std::fs::create_dir_all(&dir)?;
    let final_pack = dir.join(format!("pack-{}.pack", pack.name));
    let final_index = dir.join(format!("pack-{}.idx", pack.name));
    if final_index.exists() {
        return Ok(());
    }
    for (bytes, target, kind) in [
        (&pack.bytes, &final_pack, "pack"),
        (&pack.index, &final_index, "index"),
    ] {
        let temporary = dir.join(format!("tmp_rm_{}_{}", std::process::id(), pack.name));
        let written = write_file(&temporary, bytes, durable)
            .and_then(|()| std::fs::rename(&temporary, target));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
        super::crash_point(&format!("{place}-{kind}-renamed"));
    }
    if durable {
        // The renames themselves.
        std::fs::File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

fn write_file(path: &std::path::Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    Ok(())
}

/// Entry header: type and size, little-endian base-128 with continuation
/// bits, the first byte carrying the type and four bits of size.
fn push_header(pack: &mut Vec<u8>, kind: u8, size: usize) {
    let mut size = size;
    let mut byte = (kind << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        pack.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    pack.push(byte);
}

/// The distance back to an OFS_DELTA's base, big-endian base-128 where each
/// continuation also adds one (git's encoding).
fn push_offset(pack: &mut Vec<u8>, distance: usize) {
    let mut bytes = vec![(distance & 0x7f) as u8];
    let mut rest = distance >> 7;
    while rest > 0 {
        rest -= 1;
        bytes.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    bytes.reverse();
    pack.extend_from_slice(&bytes);
}

/// A pack entry's type code.
fn type_code(kind: ObjectType) -> Result<u8, git2::Error> {
    match kind {
        ObjectType::Commit => Ok(1),
        ObjectType::Tree => Ok(2),
        ObjectType::Blob => Ok(3),
        ObjectType::Tag => Ok(4),
        _ => Err(git2::Error::from_str("unexpected object kind")),
    }
}

/// `data` as the zlib stream a pack entry holds, appended to `out`, with a
/// compressor the caller reuses (for [`PackWriter::add_compressed`]).
pub fn zlib(
    compressor: &mut flate2::Compress,
    out: &mut Vec<u8>,
    data: &[u8],
) -> Result<(), git2::Error> {
    compress(compressor, out, data)
}

/// Appends `data` zlib-compressed to `pack`, with one compressor reused
/// for every object (setting one up costs more than compressing a small
/// object).
fn compress(
    compressor: &mut flate2::Compress,
    pack: &mut Vec<u8>,
    data: &[u8],
) -> Result<(), git2::Error> {
    compressor.reset();
    let failed = |e: flate2::CompressError| git2::Error::from_str(&e.to_string());
    pack.reserve(data.len() / 2 + 64);
    let mut input = data;
    loop {
        let before = compressor.total_in();
        let status = compressor
            .compress_vec(input, pack, flate2::FlushCompress::Finish)
            .map_err(failed)?;
        input = &input[(compressor.total_in() - before) as usize..];
        match status {
            flate2::Status::StreamEnd => return Ok(()),
            _ => pack.reserve(pack.capacity().max(64)),
        }
    }
}

/// A git delta turning `base` into `target`: copy the common prefix,
/// insert the differing middle, copy the common suffix.
fn delta(base: &[u8], target: &[u8]) -> Vec<u8> {
    let prefix = super::raw_tree::common_prefix(base, target);
    let suffix = super::raw_tree::common_suffix(&base[prefix..], &target[prefix..]);
    let mut out = Vec::with_capacity(64 + target.len() - prefix - suffix);
    push_varint(&mut out, base.len());
    push_varint(&mut out, target.len());
    push_copy(&mut out, 0, prefix);
    for chunk in target[prefix..target.len() - suffix].chunks(0x7f) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    push_copy(&mut out, base.len() - suffix, suffix);
    out
}

fn push_varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Copy instructions for `len` bytes of the base from `offset`, in chunks
/// of at most 0xffff bytes (a size of 0x10000 would need special casing).
fn push_copy(out: &mut Vec<u8>, mut offset: usize, mut len: usize) {
    while len > 0 {
        let size = len.min(0xffff);
        let mut op = 0x80u8;
        let mut args = Vec::with_capacity(6);
        for i in 0..4 {
            let byte = ((offset >> (8 * i)) & 0xff) as u8;
            if byte != 0 {
                op |= 1 << i;
                args.push(byte);
            }
        }
        for i in 0..2 {
            let byte = ((size >> (8 * i)) & 0xff) as u8;
            if byte != 0 {
                op |= 1 << (4 + i);
                args.push(byte);
            }
        }
        out.push(op);
        out.extend_from_slice(&args);
        offset += size;
        len -= size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::FileMode;
    use std::io::Write;

    #[test]
    fn a_built_pack_is_accepted_by_the_indexer_of_another_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path().join("a")).unwrap();
        let big = "x".repeat(5000);
        let blob = repo.blob(big.as_bytes()).unwrap();
        let small = repo.blob(b"small").unwrap();
        let mut builder = repo.treebuilder(None).unwrap();
        builder
            .insert("big.txt", blob, FileMode::Blob.into())
            .unwrap();
        builder
            .insert("small.txt", small, FileMode::Blob.into())
            .unwrap();
        let tree = repo.find_tree(builder.write().unwrap()).unwrap();
        let sig = git2::Signature::now("a", "a@example.com").unwrap();
        let commit = repo.commit(None, &sig, &sig, "first", &tree, &[]).unwrap();

        let objects = new_objects(&repo, &[commit]).unwrap();
        assert_eq!(objects.len(), 4, "commit, tree and two blobs");
        // A second commit rewriting the big tree, stored as a delta.
        let changed = repo.blob(b"changed").unwrap();
        let mut builder = repo.treebuilder(Some(&tree)).unwrap();
        builder
            .insert("small.txt", changed, FileMode::Blob.into())
            .unwrap();
        let tree2 = repo.find_tree(builder.write().unwrap()).unwrap();
        let parent = repo.find_commit(commit).unwrap();
        let second = repo
            .commit(None, &sig, &sig, "second", &tree2, &[&parent])
            .unwrap();
        let objects = new_objects(&repo, &[commit, second]).unwrap();
        assert_eq!(objects.len(), 7);
        assert!(objects.iter().any(|o| o.base == Some(tree.id())));
        let pack = build(&repo, &objects).unwrap();

        let other = Repository::init_bare(dir.path().join("b")).unwrap();
        store(other.path(), &pack, "test").unwrap();
        // git itself agrees with the pack and its index.
        let verified = std::process::Command::new("git")
            .args(["verify-pack", "-v"])
            .arg(
                other
                    .path()
                    .join(format!("objects/pack/pack-{}.idx", pack.name)),
            )
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        // And so does libgit2's own indexer, fed the same pack.
        let third = Repository::init_bare(dir.path().join("c")).unwrap();
        let odb = third.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        writer.write_all(&pack.bytes).unwrap();
        writer.commit().unwrap();
        let indexed = std::fs::read_dir(third.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        assert_eq!(
            std::fs::read(indexed).unwrap(),
            pack.index,
            "the same index libgit2 writes"
        );
        let copied = other.find_commit(commit).unwrap();
        assert_eq!(copied.message(), Some("first"));
        assert_eq!(other.find_blob(blob).unwrap().content(), big.as_bytes());
        let copied = other.find_commit(second).unwrap();
        assert_eq!(copied.tree_id(), tree2.id());
        let entry = copied.tree().unwrap().get_name("small.txt").unwrap().id();
        assert_eq!(other.find_blob(entry).unwrap().content(), b"changed");
    }

    fn apply(base: &[u8], delta: &[u8]) -> Vec<u8> {
        // A minimal reader of git deltas, to check the writer.
        fn varint(d: &[u8], i: &mut usize) -> usize {
            let (mut value, mut shift) = (0, 0);
            loop {
                let b = d[*i];
                *i += 1;
                value |= ((b & 0x7f) as usize) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    return value;
                }
            }
        }
        let mut i = 0;
        assert_eq!(varint(delta, &mut i), base.len());
        let size = varint(delta, &mut i);
        let mut out = Vec::new();
        while i < delta.len() {
            let op = delta[i];
            i += 1;
            if op & 0x80 != 0 {
                let (mut offset, mut len) = (0usize, 0usize);
                for bit in 0..4 {
                    if op & (1 << bit) != 0 {
                        offset |= (delta[i] as usize) << (8 * bit);
                        i += 1;
                    }
                }
                for bit in 0..3 {
                    if op & (1 << (4 + bit)) != 0 {
                        len |= (delta[i] as usize) << (8 * bit);
                        i += 1;
                    }
                }
                out.extend_from_slice(&base[offset..offset + len]);
            } else {
                out.extend_from_slice(&delta[i..i + op as usize]);
                i += op as usize;
            }
        }
        assert_eq!(out.len(), size);
        out
    }

    #[test]
    fn deltas_rebuild_the_target() {
        let base: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let cases: Vec<Vec<u8>> = vec![
            base.clone(),
            [&base[..1000], b"inserted", &base[1000..]].concat(),
            [&base[..70_000], &base[70_010..]].concat(),
            b"completely different".to_vec(),
            Vec::new(),
            [&base[..], b"tail"].concat(),
        ];
        for target in cases {
            assert_eq!(apply(&base, &delta(&base, &target)), target);
        }
    }
}
