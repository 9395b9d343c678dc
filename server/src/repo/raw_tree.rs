//! Git tree objects read as bytes, and the difference of two of them. The
//! reader of history compares every commit's trees with its parent's; the
//! large ones (`builds/` and a namespace folder with thousands of services)
//! differ in one entry or two. libgit2 would parse every entry of both
//! (most of the cost of reading a long history); here the common start and
//! end of the two byte strings are skipped with `memcmp` and only the
//! entries between them are looked at.
//!
//! A tree object is a sequence of entries `<octal mode> <name>\0<20-byte
//! id>`, sorted in git's order; nothing here writes trees.

use std::cmp::Ordering;
use std::rc::Rc;

use git2::Oid;

/// The mode of a folder entry.
const TREE_MODE: &[u8] = b"40000";

/// One tree object's bytes.
#[derive(Clone)]
pub(crate) struct RawTree {
    /// Its id.
    pub(crate) id: Oid,
    data: Rc<[u8]>,
}

/// One entry of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEntry<'t> {
    /// Its name's bytes.
    pub(crate) name: &'t [u8],
    /// The id of what it points at.
    pub(crate) id: Oid,
    /// Whether it is a folder.
    pub(crate) is_tree: bool,
    mode: &'t [u8],
}

/// One name whose entry differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The name; `None` when it is not UTF-8 (no layout folder is).
    pub(crate) name: Option<String>,
    /// The entry before, if any: its id and whether it is a folder.
    pub(crate) old: Option<(Oid, bool)>,
    /// The entry after, if any.
    pub(crate) new: Option<(Oid, bool)>,
}

impl RawTree {
    /// A tree from its id and raw bytes.
    pub(crate) fn new(id: Oid, data: &[u8]) -> Self {
        RawTree {
            id,
            data: Rc::from(data),
        }
    }

    /// Its entries in order. A malformed object ends the iteration early.
    pub(crate) fn entries(&self) -> Entries<'_> {
        Entries {
            data: &self.data,
            at: 0,
        }
    }

    /// The entry called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<RawEntry<'_>> {
        self.entries().find(|e| e.name == name.as_bytes())
    }
}

/// The entries of a [`RawTree`].
pub(crate) struct Entries<'t> {
    data: &'t [u8],
    at: usize,
}

impl<'t> Entries<'t> {
    fn position(&self) -> usize {
        self.at
    }
}

impl<'t> Iterator for Entries<'t> {
    type Item = RawEntry<'t>;

    fn next(&mut self) -> Option<RawEntry<'t>> {
        let (entry, next) = entry_at(self.data, self.at)?;
        self.at = next;
        Some(entry)
    }
}

/// The entry starting at byte `at`, and where the next one starts.
fn entry_at(data: &[u8], at: usize) -> Option<(RawEntry<'_>, usize)> {
    let rest = data.get(at..)?;
    let space = memchr::memchr(b' ', rest)?;
    let nul = space + 1 + memchr::memchr(0, &rest[space + 1..])?;
    let id = rest.get(nul + 1..nul + 21)?;
    let mode = &rest[..space];
    Some((
        RawEntry {
            name: &rest[space + 1..nul],
            id: Oid::from_bytes(id).ok()?,
            is_tree: mode == TREE_MODE,
            mode,
        },
        at + nul + 21,
    ))
}

/// Where the entry holding byte `offset` starts (entries are found from the
/// start: their boundaries cannot be told apart going backwards, since ids
/// may hold any byte).
fn entry_start(data: &[u8], offset: usize) -> usize {
    let mut at = 0;
    while let Some(nul) = data.get(at..).and_then(|rest| memchr::memchr(0, rest)) {
        let next = at + nul + 21;
        if next > offset || next >= data.len() {
            return at;
        }
        at = next;
    }
    at
}

/// The entries that differ between `old` and `new` (added, removed or
/// changed), in git's order.
pub(crate) fn changes(old: Option<&RawTree>, new: &RawTree) -> Vec<Change> {
    let Some(old) = old else {
        return new.entries().map(|e| added(&e)).collect();
    };
    if old.id == new.id {
        return Vec::new();
    }
    let (a, b) = (&old.data[..], &new.data[..]);
    let prefix = common_prefix(a, b);
    let suffix = common_suffix(&a[prefix..], &b[prefix..]);
    // Both trees have the same entries up to `prefix`, so an entry boundary
    // found in one is one in the other.
    let start = entry_start(b, prefix);
    let mut olds = Entries { data: a, at: start };
    let mut news = Entries { data: b, at: start };
    let mut out = Vec::new();
    let (mut before, mut after) = (olds.next(), news.next());
    loop {
        // The rest of both is one identical run of whole entries: done.
        let (old_left, new_left) = (
            a.len() - olds.position() + before.map_or(0, entry_len),
            b.len() - news.position() + after.map_or(0, entry_len),
        );
        if old_left == new_left && old_left <= suffix {
            break;
        }
        let order = match (&before, &after) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => git_order(x, y),
        };
        match order {
            Ordering::Less => {
                let gone = before.take().expect("compared");
                out.push(Change {
                    name: utf8(gone.name),
                    old: Some((gone.id, gone.is_tree)),
                    new: None,
                });
                before = olds.next();
            }
            Ordering::Greater => {
                let new_entry = after.take().expect("compared");
                out.push(added(&new_entry));
                after = news.next();
            }
            Ordering::Equal => {
                let (x, y) = (
                    before.take().expect("compared"),
                    after.take().expect("compared"),
                );
                if x.id != y.id || x.mode != y.mode {
                    out.push(Change {
                        name: utf8(y.name),
                        old: Some((x.id, x.is_tree)),
                        new: Some((y.id, y.is_tree)),
                    });
                }
                before = olds.next();
                after = news.next();
            }
        }
    }
    out
}

fn added(entry: &RawEntry<'_>) -> Change {
    Change {
        name: utf8(entry.name),
        old: None,
        new: Some((entry.id, entry.is_tree)),
    }
}

fn utf8(name: &[u8]) -> Option<String> {
    std::str::from_utf8(name).ok().map(str::to_string)
}

/// Bytes an entry takes.
fn entry_len(entry: RawEntry<'_>) -> usize {
    entry.mode.len() + 1 + entry.name.len() + 1 + 20
}

/// Git's order of tree entries: bytewise by name, a folder's name as if it
/// ended in `/`.
fn git_order(a: &RawEntry<'_>, b: &RawEntry<'_>) -> Ordering {
    let common = a.name.len().min(b.name.len());
    match a.name[..common].cmp(&b.name[..common]) {
        Ordering::Equal => {}
        other => return other,
    }
    let next = |entry: &RawEntry<'_>| match entry.name.get(common) {
        Some(&byte) => byte,
        None if entry.is_tree => b'/',
        None => 0,
    };
    next(a).cmp(&next(b))
}

/// Length of the common start of `a` and `b`, compared a block at a time
/// (each block one `memcmp`).
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let limit = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= limit && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    while at < limit && a[at] == b[at] {
        at += 1;
    }
    at
}

/// Length of the common end of `a` and `b`.
pub(crate) fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let limit = a.len().min(b.len());
    let mut len = 0;
    while len + BLOCK <= limit
        && a[a.len() - len - BLOCK..a.len() - len] == b[b.len() - len - BLOCK..b.len() - len]
    {
        len += BLOCK;
    }
    while len < limit && a[a.len() - len - 1] == b[b.len() - len - 1] {
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{FileMode, Repository};

    fn raw(repo: &Repository, oid: Oid) -> RawTree {
        let odb = repo.odb().unwrap();
        let object = odb.read(oid).unwrap();
        RawTree::new(oid, object.data())
    }

    /// A tree of `entries` (name, content, is_folder).
    fn tree(repo: &Repository, entries: &[(&str, &str, bool)]) -> Oid {
        let mut builder = repo.treebuilder(None).unwrap();
        for (name, content, folder) in entries {
            if *folder {
                let mut inner = repo.treebuilder(None).unwrap();
                let blob = repo.blob(content.as_bytes()).unwrap();
                inner.insert("f", blob, FileMode::Blob.into()).unwrap();
                let oid = inner.write().unwrap();
                builder.insert(name, oid, FileMode::Tree.into()).unwrap();
            } else {
                let blob = repo.blob(content.as_bytes()).unwrap();
                builder.insert(name, blob, FileMode::Blob.into()).unwrap();
            }
        }
        builder.write().unwrap()
    }

    /// What libgit2's own parse says differs, by name lookups.
    fn reference(repo: &Repository, old: Oid, new: Oid) -> Vec<Option<String>> {
        let (old, new) = (repo.find_tree(old).unwrap(), repo.find_tree(new).unwrap());
        let mut names = std::collections::BTreeSet::new();
        for e in new.iter() {
            match old.get_name(e.name().unwrap()) {
                Some(o) if o.id() == e.id() && o.filemode() == e.filemode() => {}
                _ => {
                    names.insert(e.name().unwrap().to_string());
                }
            }
        }
        for e in old.iter() {
            if new.get_name(e.name().unwrap()).is_none() {
                names.insert(e.name().unwrap().to_string());
            }
        }
        names.into_iter().map(Some).collect()
    }

    fn names(changes: &[Change]) -> Vec<Option<String>> {
        // A name that turned from a file into a folder is two changes
        // (one gone, one added: they sort apart); the reference counts it once.
        let mut names: Vec<_> = changes.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn agrees_with_libgit2_on_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let many: Vec<(String, String, bool)> = (0..300)
            .map(|i| (format!("svc-{i:04}"), format!("v{i}"), i % 3 != 0))
            .collect();
        fn as_refs(v: &[(String, String, bool)]) -> Vec<(&str, &str, bool)> {
            v.iter()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
                .collect()
        }
        let base = tree(&repo, &as_refs(&many));
        let mut cases: Vec<Vec<(String, String, bool)>> = Vec::new();
        let mut changed = many.clone();
        changed[150].1 = "changed".into();
        cases.push(changed);
        let mut first_and_last = many.clone();
        first_and_last[0].1 = "x".into();
        first_and_last[299].1 = "y".into();
        cases.push(first_and_last);
        let mut removed = many.clone();
        removed.remove(42);
        cases.push(removed);
        let mut added = many.clone();
        added.push(("svc-0042-b".into(), "new".into(), true));
        added.push(("zzz".into(), "new".into(), false));
        cases.push(added);
        let mut kind = many.clone();
        kind[7].2 = !kind[7].2;
        cases.push(kind);
        let mut spread = many.clone();
        for i in (0..300).step_by(37) {
            spread[i].1 = format!("spread {i}");
        }
        cases.push(spread);
        cases.push(Vec::new());
        for case in &cases {
            let new = tree(&repo, &as_refs(case));
            for (from, to) in [(base, new), (new, base)] {
                let found = changes(Some(&raw(&repo, from)), &raw(&repo, to));
                assert_eq!(names(&found), reference(&repo, from, to));
            }
        }
    }

    #[test]
    fn a_folder_sorts_as_if_its_name_ended_in_a_slash() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let old = tree(
            &repo,
            &[("a-b", "1", false), ("a", "2", true), ("a.c", "3", false)],
        );
        let new = tree(
            &repo,
            &[
                ("a-b", "1", false),
                ("a", "2", true),
                ("a.c", "3", false),
                ("z", "4", false),
            ],
        );
        let found = changes(Some(&raw(&repo, old)), &raw(&repo, new));
        assert_eq!(names(&found), vec![Some("z".to_string())]);
        let tree = raw(&repo, old);
        let order: Vec<&[u8]> = tree.entries().map(|e| e.name).collect();
        assert_eq!(order, vec![&b"a-b"[..], b"a.c", b"a"]);
        assert!(tree.get("a").unwrap().is_tree);
        assert!(!tree.get("a.c").unwrap().is_tree);
    }

    #[test]
    fn everything_is_new_without_an_old_tree_and_nothing_when_equal() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let t = tree(&repo, &[("a", "1", false), ("b", "2", true)]);
        let t = raw(&repo, t);
        assert_eq!(changes(None, &t).len(), 2);
        assert!(changes(Some(&t), &t).is_empty());
    }

    #[test]
    fn a_malformed_object_ends_the_entries_without_a_panic() {
        let tree = RawTree::new(Oid::zero(), b"100644 a\0short");
        assert_eq!(tree.entries().count(), 0);
        assert!(changes(Some(&RawTree::new(Oid::zero(), b"")), &tree).is_empty());
    }
}
