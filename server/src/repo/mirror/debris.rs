//! What a crashed run leaves behind, cleared at start: lock files and
//! half-written packs in the mirror, and the server's own temporary packs
//! in a local remote. Safe only because the server holds the data dir's
//! lock; every removal is logged.

use std::path::Path;

/// Removes from a local remote what this server's own interrupted push left
/// there, and nothing else: its temporary files (`tmp_rm_*` of a pack the
/// mirror has, or any older than a minute), and a pack
/// without an index whose twin is in the mirror (every pack pushed to a
/// local remote is stored in the mirror first, under the same name).
pub(super) fn clear_own_debris_in_remote(mirror: &Path, remote: &Path) {
    let git_dir = super::git_dir_of(remote);
    let Ok(entries) = std::fs::read_dir(git_dir.join("objects/pack")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Another server sharing the remote may be writing its own temporary
        // file right now; one older than a minute is nobody's.
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        // `tmp_rm_<pid>_<pack>`: the pack is stored in the mirror first, so
        // one the mirror has is this server's.
        let own_temporary = name
            .strip_prefix("tmp_rm_")
            .and_then(|rest| rest.split_once('_'))
            .is_some_and(|(_, pack)| {
                let mirrored = mirror.join("objects/pack").join(format!("pack-{pack}"));
                mirrored.with_extension("pack").exists() || mirrored.with_extension("idx").exists()
            });
        let ours = (name.starts_with("tmp_rm_") && (stale || own_temporary))
            || (name.ends_with(".pack")
                && !path.with_extension("idx").exists()
                && mirror.join("objects/pack").join(&name).exists());
        if ours && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(path = %path.display(), "removed what an interrupted push left in the remote");
        }
    }
}

/// Removes what a run that crashed mid-write can leave in the mirror: lock
/// files (which would make every later ref update fail), temporary files of
/// a pack being written, and a pack whose index was never written (which
/// git warns about on every command). Only safe because the server holds
/// the data dir's lock: no other process writes this mirror. Each removal
/// is logged.
pub(crate) fn clear_debris(dir: &Path) {
    let mut removed = Vec::new();
    let mut visit = vec![dir.to_path_buf()];
    while let Some(folder) = visit.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                // Loose objects hold no locks; the rest is small.
                if !(folder == dir.join("objects") && name.len() == 2) {
                    visit.push(path);
                }
                continue;
            }
            let in_pack_dir = folder.ends_with("objects/pack");
            let in_objects = folder == dir.join("objects");
            let debris = name.ends_with(".lock")
                || (in_pack_dir && (name.starts_with("tmp_") || name.starts_with(".tmp-")))
                || (in_objects && name.starts_with("streamed_"))
                || (in_pack_dir && name.ends_with(".pack") && !path.with_extension("idx").exists());
            if debris && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    for path in removed {
        tracing::warn!(path = %path.display(), "removed what an interrupted write left in the mirror");
    }
}
