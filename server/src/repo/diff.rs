//! The difference between two trees as git computes it: libgit2's diff
//! with git's defaults (Myers, three lines of context, renames found as
//! `git diff -M` finds them), read into plain values (files, hunks, lines)
//! that the read side can judge and the edges can render. It knows nothing
//! of releases or artifacts.

use git2::{Delta, DiffFindOptions, DiffOptions, Patch, Repository, Tree};

/// How a file differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Only in the new tree.
    Added,
    /// Only in the old tree.
    Deleted,
    /// In both, with other contents.
    Modified,
    /// Moved (and maybe changed): `old_path` in the old tree.
    Renamed,
}

/// What a line of a hunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// The same on both sides (context).
    Context,
    /// Only in the new tree (`+`).
    Added,
    /// Only in the old tree (`-`).
    Removed,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Context, added or removed.
    pub(crate) kind: LineKind,
    /// Its text, without the line end.
    pub(crate) text: String,
    /// Line number in the old file (0 for an added line).
    pub(crate) old_line: u32,
    /// Line number in the new file (0 for a removed line).
    pub(crate) new_line: u32,
    /// Left false here: a reader marks the lines that matter to it (the
    /// comparison of environments marks what differs beyond the artifact
    /// id).
    pub(crate) notable: bool,
}

/// One hunk: a run of changed lines with their context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hunk {
    /// Git's header, e.g. `@@ -1,4 +1,4 @@`.
    pub(crate) header: String,
    /// Its lines in order.
    pub(crate) lines: Vec<Line>,
}

/// One file that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDiff {
    /// Its path in the new tree (in the old one when deleted).
    pub(crate) path: String,
    /// Its path in the old tree (the same as `path` unless renamed).
    pub(crate) old_path: String,
    /// How it differs.
    pub(crate) change: Change,
    /// Binary on either side: no lines are shown.
    pub(crate) binary: bool,
    /// Its hunks (none for a binary file, or when the diff was cut short).
    pub(crate) hunks: Vec<Hunk>,
}

/// The difference between two trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TreeDiff {
    /// The files that differ, by path.
    pub(crate) files: Vec<FileDiff>,
    /// Lines were left out after `max_lines`.
    pub(crate) truncated: bool,
}

/// How `old` differs from `new` (a missing tree is an empty one), with at
/// most `max_lines` lines in all: past them files are still listed, without
/// their hunks, and `truncated` says so.
pub(crate) fn diff_trees(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    max_lines: usize,
) -> Result<TreeDiff, git2::Error> {
    let mut options = DiffOptions::new();
    options.context_lines(3).ignore_submodules(true);
    let mut diff = repo.diff_tree_to_tree(old, new, Some(&mut options))?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))?;
    let mut result = TreeDiff::default();
    let mut lines_left = max_lines;
    for index in 0..diff.deltas().len() {
        let Some(delta) = diff.get_delta(index) else {
            continue;
        };
        let change = match delta.status() {
            Delta::Added | Delta::Untracked | Delta::Copied => Change::Added,
            Delta::Deleted => Change::Deleted,
            Delta::Renamed => Change::Renamed,
            Delta::Modified | Delta::Typechange => Change::Modified,
            Delta::Unmodified | Delta::Ignored | Delta::Conflicted | Delta::Unreadable => continue,
        };
        let path_of = |file: git2::DiffFile<'_>| {
            file.path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let old_path = path_of(delta.old_file());
        let path = match change {
            Change::Deleted => old_path.clone(),
            _ => path_of(delta.new_file()),
        };
        let mut file = FileDiff {
            old_path: if old_path.is_empty() {
                path.clone()
            } else {
                old_path
            },
            path,
            change,
            binary: delta.flags().is_binary(),
            hunks: Vec::new(),
        };
        let patch = Patch::from_diff(&diff, index)?;
        if let Some(patch) = patch {
            file.binary |= patch.delta().flags().is_binary();
            if !file.binary {
                for h in 0..patch.num_hunks() {
                    let (hunk, count) = patch.hunk(h)?;
                    if count > lines_left {
                        result.truncated = true;
                        break;
                    }
                    let mut lines = Vec::with_capacity(count);
                    for l in 0..count {
                        let line = patch.line_in_hunk(h, l)?;
                        let kind = match line.origin() {
                            '+' => LineKind::Added,
                            '-' => LineKind::Removed,
                            ' ' => LineKind::Context,
                            // "No newline at end of file" markers.
                            _ => continue,
                        };
                        let text = String::from_utf8_lossy(line.content());
                        lines.push(Line {
                            kind,
                            text: text.trim_end_matches(['\n', '\r']).to_string(),
                            old_line: line.old_lineno().unwrap_or(0),
                            new_line: line.new_lineno().unwrap_or(0),
                            notable: false,
                        });
                    }
                    lines_left -= count;
                    file.hunks.push(Hunk {
                        header: String::from_utf8_lossy(hunk.header())
                            .trim_end()
                            .to_string(),
                        lines,
                    });
                }
            }
        }
        result.files.push(file);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(repo: &Repository, files: &[(&str, &str)]) -> git2::Oid {
        let mut root = None;
        for (path, content) in files {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let parts: Vec<&str> = path.split('/').collect();
            let current = root.map(|id| repo.find_tree(id).unwrap());
            root = crate::repo::tree::replace_at(
                repo,
                current.as_ref(),
                &parts,
                Some((blob, git2::FileMode::Blob)),
            )
            .unwrap();
        }
        root.unwrap_or_else(|| crate::repo::tree::empty_tree(repo).unwrap())
    }

    #[test]
    fn lines_hunks_and_files_as_git_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let old = tree(
            &repo,
            &[
                (
                    "deployment.yaml",
                    "kind: Deployment\nreplicas: 3\nimage: a:1\n",
                ),
                ("gone.yaml", "x: 1\n"),
                ("logo.bin", "\0\u{1}\u{2}"),
            ],
        );
        let new = tree(
            &repo,
            &[
                (
                    "deployment.yaml",
                    "kind: Deployment\nreplicas: 1\nimage: a:1\n",
                ),
                ("config.yaml", "y: 2\n"),
                ("logo.bin", "\0\u{1}\u{3}"),
            ],
        );
        let (old, new) = (repo.find_tree(old).unwrap(), repo.find_tree(new).unwrap());
        let diff = diff_trees(&repo, Some(&old), Some(&new), 1000).unwrap();
        let summary: Vec<(&str, Change, bool)> = diff
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change, f.binary))
            .collect();
        assert_eq!(
            summary,
            [
                ("config.yaml", Change::Added, false),
                ("deployment.yaml", Change::Modified, false),
                ("gone.yaml", Change::Deleted, false),
                ("logo.bin", Change::Modified, true),
            ]
        );
        let hunk = &diff.files[1].hunks[0];
        assert_eq!(hunk.header, "@@ -1,3 +1,3 @@");
        let lines: Vec<(LineKind, &str, u32, u32)> = hunk
            .lines
            .iter()
            .map(|l| (l.kind, l.text.as_str(), l.old_line, l.new_line))
            .collect();
        assert_eq!(
            lines,
            [
                (LineKind::Context, "kind: Deployment", 1, 1),
                (LineKind::Removed, "replicas: 3", 2, 0),
                (LineKind::Added, "replicas: 1", 0, 2),
                (LineKind::Context, "image: a:1", 3, 3),
            ]
        );
        assert!(diff.files[3].hunks.is_empty(), "no lines of a binary file");
        assert!(!diff.truncated);

        let short = diff_trees(&repo, Some(&old), Some(&new), 2).unwrap();
        assert!(short.truncated);
        assert_eq!(short.files.len(), 4, "files are listed past the bound");
        let everything = diff_trees(&repo, None, Some(&new), 1000).unwrap();
        assert!(everything.files.iter().all(|f| f.change == Change::Added));
    }
}
