//! Packs of the writer's new objects. A batch's objects are kept in memory
//! (libgit2's mempack) and then written as one pack file, to the mirror and
//! to a local remote, instead of one loose file per object. libgit2's own
//! pack builder searches for deltas, which costs far more than the handful
//! of small objects a release makes; this writer stores them whole.

use std::collections::HashSet;
use std::io::Write;

use flate2::write::ZlibEncoder;
use git2::{ObjectType, Oid, Repository, Tree};

/// The objects a chain of new commits adds: each commit and every tree and
/// blob that differs from the same path in its first parent. Objects that
/// also exist elsewhere may be included; a pack may repeat them.
pub fn new_objects(repo: &Repository, commits: &[Oid]) -> Result<Vec<Oid>, git2::Error> {
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
            objects.push(oid);
        }
    }
    Ok(objects)
}

fn collect_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    before: Option<&Tree<'_>>,
    seen: &mut HashSet<Oid>,
    objects: &mut Vec<Oid>,
) -> Result<(), git2::Error> {
    if before.is_some_and(|b| b.id() == tree.id()) || !seen.insert(tree.id()) {
        return Ok(());
    }
    objects.push(tree.id());
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
            Some(ObjectType::Blob) => {
                if seen.insert(entry.id()) {
                    objects.push(entry.id());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A version 2 pack holding `objects` whole (no deltas).
pub fn build(repo: &Repository, objects: &[Oid]) -> Result<Vec<u8>, git2::Error> {
    let odb = repo.odb()?;
    let mut pack = Vec::with_capacity(256 + objects.len() * 512);
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    let count =
        u32::try_from(objects.len()).map_err(|_| git2::Error::from_str("too many objects"))?;
    pack.extend_from_slice(&count.to_be_bytes());
    for &oid in objects {
        let object = odb.read(oid)?;
        let kind: u8 = match object.kind() {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            _ => return Err(git2::Error::from_str("unexpected object kind")),
        };
        let data = object.data();
        // Header: type and size, little-endian base-128 with continuation bits.
        let mut size = data.len();
        let mut byte = (kind << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            pack.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(byte);
        let mut encoder = ZlibEncoder::new(&mut pack, flate2::Compression::fast());
        encoder
            .write_all(data)
            .and_then(|_| encoder.finish().map(|_| ()))
            .map_err(|e| git2::Error::from_str(&e.to_string()))?;
    }
    let digest = sha1_smol::Sha1::from(&pack).digest().bytes();
    pack.extend_from_slice(&digest);
    Ok(pack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::FileMode;

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
        let pack = build(&repo, &objects).unwrap();

        let other = Repository::init_bare(dir.path().join("b")).unwrap();
        let odb = other.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        writer.write_all(&pack).unwrap();
        writer.commit().unwrap();
        let copied = other.find_commit(commit).unwrap();
        assert_eq!(copied.message(), Some("first"));
        assert_eq!(other.find_blob(blob).unwrap().content(), big.as_bytes());
    }
}
