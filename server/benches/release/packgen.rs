//! The generator's fast way to write a repository: the history's objects go
//! straight into one pack, with the server's own pack writer, and its index
//! is written alongside (no `git index-pack`). It keeps the tree of master
//! in memory, as `git fast-import` does, but computes each large tree's
//! delta from the entries that changed instead of searching for one: large
//! trees (`builds/`, a namespace folder of every service) are stored as
//! deltas of their previous version, chains capped at git's usual depth;
//! everything else is stored whole. Object ids are SHA-1, computed here;
//! compressing and appending to the pack happen on a second thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use git2::{ObjectType, Oid};
use release_manager_server::pack::{Pack, PackWriter};
use sha1::{Digest, Sha1};

use super::generator::{Op, Sink};

/// Trees at least this large are stored as deltas of their previous version.
const DELTA_FROM: usize = 2048;
/// Longest delta chain, as git's default `--depth`.
const MAX_DEPTH: u32 = 50;

/// What the packing thread is asked to store.
enum Entry {
    Whole {
        id: Oid,
        kind: ObjectType,
        data: Vec<u8>,
        /// Whether a later entry may be a delta of this one.
        base: bool,
    },
    /// An object compressed by the generating thread (blobs: most of the
    /// objects, compressed where there is time to spare).
    Compressed {
        id: Oid,
        kind: ObjectType,
        len: usize,
        zlib: Vec<u8>,
    },
    Delta {
        id: Oid,
        base_id: Oid,
        base: Arc<Vec<u8>>,
        data: Arc<Vec<u8>>,
    },
}

/// A tree's bytes as written, and where each entry's id sits in them.
type Layout = (Arc<Vec<u8>>, HashMap<Vec<u8>, usize>);

/// A folder of master's tree.
#[derive(Default)]
struct Dir {
    /// Entries by git's sort key (a folder's name with a `/` after it).
    entries: BTreeMap<Vec<u8>, (Vec<u8>, Node)>,
    /// Its id, when nothing below it changed since it was written.
    id: Option<Oid>,
    /// Its bytes as last written, and where each entry's id sits in them.
    layout: Option<Layout>,
    /// The id of the version in `layout`.
    layout_id: Option<Oid>,
    /// Entries whose id changed since the last write.
    changed: Vec<Vec<u8>>,
    /// Entries added and removed since the last write: when they are the
    /// same names (a build folder replaced: removed, then written again),
    /// the layout still holds.
    added: Vec<Vec<u8>>,
    removed: Vec<Vec<u8>>,
    /// Depth of the last version's delta chain (large trees only).
    depth: u32,
}

enum Node {
    File(Oid),
    Dir(Box<Dir>),
}

fn dir_key(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    key.push(b'/');
    key
}

/// How an entry of a folder changed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Touch {
    Changed,
    Added,
    Removed,
}

impl Dir {
    fn touch(&mut self, key: Vec<u8>, how: Touch) {
        self.id = None;
        match how {
            Touch::Changed => self.changed.push(key),
            Touch::Added => self.added.push(key),
            Touch::Removed => self.removed.push(key),
        }
    }

    /// Whether the last layout still holds: the same names as then.
    fn same_names(&mut self) -> bool {
        for keys in [&mut self.added, &mut self.removed] {
            keys.sort();
            keys.dedup();
        }
        self.added == self.removed
    }

    fn put(&mut self, path: &[&str], blob: Oid) {
        match path {
            [] => {}
            [name] => {
                if self.entries.remove(&dir_key(name)).is_some() {
                    self.touch(dir_key(name), Touch::Removed);
                }
                let key = name.as_bytes().to_vec();
                let old = self
                    .entries
                    .insert(key.clone(), (key.clone(), Node::File(blob)));
                let how = if old.is_some() {
                    Touch::Changed
                } else {
                    Touch::Added
                };
                self.touch(key, how);
            }
            [name, rest @ ..] => {
                if self.entries.remove(name.as_bytes()).is_some() {
                    self.touch(name.as_bytes().to_vec(), Touch::Removed);
                }
                let key = dir_key(name);
                let how = if self.entries.contains_key(&key) {
                    Touch::Changed
                } else {
                    Touch::Added
                };
                let (_, node) = self
                    .entries
                    .entry(key.clone())
                    .or_insert_with(|| (name.as_bytes().to_vec(), Node::Dir(Box::default())));
                if let Node::Dir(dir) = node {
                    dir.put(rest, blob);
                }
                self.touch(key, how);
            }
        }
    }

    /// Removes `path`; returns whether this folder is now empty.
    fn delete(&mut self, path: &[&str]) -> bool {
        match path {
            [] => {}
            [name] => {
                for key in [name.as_bytes().to_vec(), dir_key(name)] {
                    if self.entries.remove(&key).is_some() {
                        self.touch(key, Touch::Removed);
                    }
                }
            }
            [name, rest @ ..] => {
                let key = dir_key(name);
                if let Some((_, Node::Dir(dir))) = self.entries.get_mut(&key) {
                    if dir.delete(rest) {
                        self.entries.remove(&key);
                        self.touch(key, Touch::Removed);
                    } else {
                        self.touch(key, Touch::Changed);
                    }
                }
            }
        }
        self.entries.is_empty()
    }

    /// Writes this folder (and what changed below it).
    fn write(&mut self, out: &mut Output) -> std::io::Result<Oid> {
        if let Some(id) = self.id {
            return Ok(id);
        }
        let previous = self
            .layout
            .as_ref()
            .zip(self.layout_id)
            .map(|((bytes, _), id)| (bytes.clone(), id));
        let same_names = self.same_names();
        let mut patch = std::mem::take(&mut self.changed);
        patch.append(&mut self.added);
        self.removed.clear();
        let layout = self.layout.take().filter(|_| same_names);
        let bytes = match layout {
            // Same entries as last time: patch the ids that changed.
            Some((bytes, offsets)) => {
                let mut bytes = Arc::unwrap_or_clone(bytes);
                for key in patch {
                    let Some((_, node)) = self.entries.get_mut(&key) else {
                        continue;
                    };
                    let id = match node {
                        Node::File(id) => *id,
                        Node::Dir(dir) => dir.write(out)?,
                    };
                    let at = offsets[&key];
                    bytes[at..at + 20].copy_from_slice(id.as_bytes());
                }
                self.layout = Some((Arc::new(bytes), offsets));
                self.layout.as_ref().expect("just set").0.clone()
            }
            None => {
                let mut bytes = Vec::with_capacity(self.entries.len() * 40);
                let mut offsets = HashMap::with_capacity(self.entries.len());
                for (key, (name, node)) in self.entries.iter_mut() {
                    let (mode, id): (&[u8], Oid) = match node {
                        Node::File(id) => (b"100644", *id),
                        Node::Dir(dir) => (b"40000", dir.write(out)?),
                    };
                    bytes.extend_from_slice(mode);
                    bytes.push(b' ');
                    bytes.extend_from_slice(name);
                    bytes.push(0);
                    offsets.insert(key.clone(), bytes.len());
                    bytes.extend_from_slice(id.as_bytes());
                }
                let bytes = Arc::new(bytes);
                self.layout = Some((bytes.clone(), offsets));
                bytes
            }
        };
        let id = object_id("tree", &bytes);
        self.layout_id = Some(id);
        if out.written.insert(id) {
            let large = bytes.len() >= DELTA_FROM;
            let base = previous.filter(|_| large && self.depth < MAX_DEPTH);
            match base {
                Some((base, base_id)) => {
                    self.depth += 1;
                    out.send(Entry::Delta {
                        id,
                        base_id,
                        base,
                        data: bytes,
                    })?;
                }
                None => {
                    self.depth = 0;
                    out.send(Entry::Whole {
                        id,
                        kind: ObjectType::Tree,
                        data: bytes.to_vec(),
                        base: large,
                    })?;
                }
            }
        }
        self.id = Some(id);
        Ok(id)
    }
}

/// Where objects go: the packing thread (in batches: one hand-over per
/// object costs more than compressing it), and the ids already sent.
struct Output {
    to_pack: SyncSender<Vec<Entry>>,
    batch: Vec<Entry>,
    written: HashSet<Oid>,
    compressor: flate2::Compress,
}

/// Entries handed to the packing thread at once.
const BATCH: usize = 512;

impl Output {
    fn send(&mut self, entry: Entry) -> std::io::Result<()> {
        self.batch.push(entry);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.to_pack
            .send(batch)
            .map_err(|_| std::io::Error::other("the packing thread stopped"))
    }
}

fn to_io(e: git2::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Git's id of an object: SHA-1 of `<kind> <len>\0` and its bytes.
fn object_id(kind: &str, data: &[u8]) -> Oid {
    let mut hasher = Sha1::new();
    hasher.update(format!("{kind} {}\0", data.len()).as_bytes());
    hasher.update(data);
    Oid::from_bytes(&hasher.finalize()).expect("a SHA-1 is 20 bytes")
}

/// Compresses and appends every entry; returns the finished pack.
fn pack_all(batches: Receiver<Vec<Entry>>) -> std::io::Result<Pack> {
    let mut pack = PackWriter::with_capacity(1 << 20);
    // Offsets of the entries that later ones may be deltas of.
    let mut bases: HashMap<Oid, usize> = HashMap::new();
    for entry in batches.into_iter().flatten() {
        match entry {
            Entry::Whole {
                id,
                kind,
                data,
                base,
            } => {
                let offset = pack.add_whole(id, kind, &data).map_err(to_io)?;
                if base {
                    bases.insert(id, offset);
                }
            }
            Entry::Compressed {
                id,
                kind,
                len,
                zlib,
            } => {
                pack.add_compressed(id, kind, len, &zlib).map_err(to_io)?;
            }
            Entry::Delta {
                id,
                base_id,
                base,
                data,
            } => {
                let offset = match bases.get(&base_id) {
                    Some(&base_offset) => pack
                        .add_delta(id, base_offset, &base, &data)
                        .map_err(to_io)?,
                    None => pack.add_whole(id, ObjectType::Tree, &data).map_err(to_io)?,
                };
                bases.remove(&base_id);
                bases.insert(id, offset);
            }
        }
    }
    pack.finish().map_err(to_io)
}

/// Generated history, written into one pack.
pub struct PackSink {
    root: Dir,
    out: Output,
    packing: std::thread::JoinHandle<std::io::Result<Pack>>,
    tip: Option<Oid>,
    ts: u64,
    commits: usize,
}

impl PackSink {
    /// An empty history whose first commit is one tick after `ts`.
    pub fn new(ts: u64) -> Self {
        let (to_pack, batches) = sync_channel(16);
        let packing = std::thread::Builder::new()
            .name("packing".into())
            .spawn(move || pack_all(batches))
            .expect("the OS starts a thread");
        PackSink {
            root: Dir::default(),
            out: Output {
                to_pack,
                batch: Vec::with_capacity(BATCH),
                written: HashSet::new(),
                compressor: flate2::Compress::new(flate2::Compression::fast(), true),
            },
            packing,
            tip: None,
            ts,
            commits: 0,
        }
    }

    /// Commits written.
    pub fn commits(&self) -> usize {
        self.commits
    }

    /// Stores the pack and its index in the bare repository `dest` and
    /// points master at the last commit.
    pub fn finish(self, dest: &Path) -> std::io::Result<()> {
        let tip = self.tip.expect("the generator writes commits");
        let mut out = self.out;
        out.flush()?;
        drop(out);
        let pack = self
            .packing
            .join()
            .map_err(|_| std::io::Error::other("the packing thread panicked"))??;
        let dir = dest.join("objects/pack");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("pack-{}.pack", pack.name)), &pack.bytes)?;
        std::fs::write(dir.join(format!("pack-{}.idx", pack.name)), &pack.index)?;
        std::fs::write(dest.join("refs/heads/master"), format!("{tip}\n"))
    }
}

impl Sink for PackSink {
    type Blob = Oid;

    fn blob(&mut self, data: &str) -> std::io::Result<Oid> {
        let id = object_id("blob", data.as_bytes());
        if self.out.written.insert(id) {
            let mut zlib = Vec::with_capacity(data.len() / 2 + 64);
            release_manager_server::pack::zlib(
                &mut self.out.compressor,
                &mut zlib,
                data.as_bytes(),
            )
            .map_err(to_io)?;
            self.out.send(Entry::Compressed {
                id,
                kind: ObjectType::Blob,
                len: data.len(),
                zlib,
            })?;
        }
        Ok(id)
    }

    fn commit(&mut self, message: &str, author: &str, ops: Vec<Op<Oid>>) -> std::io::Result<()> {
        for op in ops {
            match op {
                Op::Put(path, blob) => {
                    let parts: Vec<&str> = path.split('/').collect();
                    self.root.put(&parts, blob);
                }
                Op::Delete(path) => {
                    let parts: Vec<&str> = path.split('/').collect();
                    self.root.delete(&parts);
                }
            }
        }
        let tree = self.root.write(&mut self.out)?;
        self.ts += 17;
        self.commits += 1;
        let mut text = format!("tree {tree}\n");
        if let Some(parent) = self.tip {
            text.push_str(&format!("parent {parent}\n"));
        }
        text.push_str(&format!(
            "author {author} <{author}@example.com> {ts} +0000\ncommitter release-manager <rm@example.com> {ts} +0000\n\n{message}",
            ts = self.ts
        ));
        let id = object_id("commit", text.as_bytes());
        if self.out.written.insert(id) {
            self.out.send(Entry::Whole {
                id,
                kind: ObjectType::Commit,
                data: text.into_bytes(),
                base: false,
            })?;
        }
        self.tip = Some(id);
        Ok(())
    }
}
