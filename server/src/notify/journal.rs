//! The notification journal: every event that may be notified, numbered,
//! in one append-only file in the data dir (`notifications/journal.jsonl`,
//! one JSON object a line). Destinations read it at their own pace and
//! record how far they got; entries every destination has are dropped
//! when the file is rewritten (atomically, with a header saying where the
//! dropped part ended).
//!
//! The journal also remembers the cursor of the last commit event it
//! holds, so that after a restart (or a crash between a push and its
//! journal line) the events of later commits are read again from history
//! instead of being lost; and the place of the last deployment report, so
//! that reports another replica took meanwhile are read again from the
//! deployment record.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::config::Kind;

/// One event, with what a message about it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Position in the journal, from 1.
    pub(crate) seq: u64,
    /// Stable id (the same on every delivery, also after a restart).
    pub(crate) id: String,
    /// What happened.
    pub(crate) kind: Kind,
    /// When (seconds since the epoch): the commit's time, or the report's.
    pub(crate) time: i64,
    /// The event's cursor (commit events only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) cursor: String,
    /// The report's place in the deployment record (reports only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) report_cursor: String,
    /// The service.
    pub(crate) service: String,
    /// The environment (empty for builds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) environment: String,
    /// The namespace folder of the release (releases and reports).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    /// The artifact.
    pub(crate) artifact_id: String,
    /// Its branch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) branch: String,
    /// Who wrote the change it was built from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) author: String,
    /// Who released it (or pushed the build).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) actor: String,
    /// The config repository commit (release or build), or the revision a
    /// deployment report names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) commit: String,
    /// The CI job that built it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) build_url: String,
    /// The source commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) source_url: String,
    /// How it was released (`promote`, `release_branch`, ...) or what the
    /// controller said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) detail: String,
}

/// The first line of a rewritten file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// The last seq dropped.
    base_seq: u64,
    /// The cursor of the last commit event dropped (or where journaling
    /// began).
    base_cursor: String,
    /// The place of the last report dropped (or of the deployment record
    /// when journaling began; empty: unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    base_report_cursor: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header(Header),
    Entry(Box<Entry>),
}

struct Inner {
    entries: VecDeque<Entry>,
    base_seq: u64,
    base_cursor: String,
    base_report_cursor: String,
    file: std::fs::File,
    /// An append failed part-way.
    torn: bool,
}

/// The journal.
pub(crate) struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// The last seq written; destinations wait on it.
    latest: tokio::sync::watch::Sender<u64>,
}

impl Journal {
    /// Opens (or creates, beginning at `start_cursor` in history and
    /// `start_report_cursor` in the deployment record) the journal in
    /// `dir`. A line cut short by a crash is dropped with a warning.
    pub(crate) fn open(
        dir: &Path,
        start_cursor: &str,
        start_report_cursor: &str,
    ) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("journal.jsonl");
        let (mut base_seq, mut base_cursor, mut entries) =
            (0, start_cursor.to_string(), VecDeque::new());
        let mut base_report_cursor = start_report_cursor.to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (number, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    match serde_json::from_str::<Line>(line) {
                        Ok(Line::Header(header)) => {
                            base_seq = header.base_seq;
                            base_cursor = header.base_cursor;
                            // A journal of a version before reports had
                            // places begins with the record as it is now.
                            if !header.base_report_cursor.is_empty() {
                                base_report_cursor = header.base_report_cursor;
                            }
                        }
                        Ok(Line::Entry(entry)) => entries.push_back(*entry),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), line = number + 1, error = %e, "unreadable notification journal line dropped")
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = rewrite(&path, base_seq, &base_cursor, &base_report_cursor, &entries)?;
        let last = entries.back().map_or(base_seq, |e| e.seq);
        Ok(Journal {
            path,
            inner: Mutex::new(Inner {
                entries,
                base_seq,
                base_cursor,
                base_report_cursor,
                file,
                torn: false,
            }),
            latest: tokio::sync::watch::channel(last).0,
        })
    }

    /// The cursor of the last commit event journaled: where reading
    /// history resumes.
    pub(crate) fn last_cursor(&self) -> String {
        let inner = self.inner.lock().expect("journal lock");
        inner
            .entries
            .iter()
            .rev()
            .find(|e| !e.cursor.is_empty())
            .map_or_else(|| inner.base_cursor.clone(), |e| e.cursor.clone())
    }

    /// The place of the last report journaled (or where journaling of
    /// reports began); `None` when unknown.
    pub(crate) fn last_report_cursor(&self) -> Option<String> {
        let inner = self.inner.lock().expect("journal lock");
        let last = inner
            .entries
            .iter()
            .rev()
            .find(|e| !e.report_cursor.is_empty())
            .map_or_else(
                || inner.base_report_cursor.clone(),
                |e| e.report_cursor.clone(),
            );
        (!last.is_empty()).then_some(last)
    }

    /// Where an entry puts a destination that has everything up to it
    /// (`seq`): the cursor of the last commit event and the place of the
    /// last report at or before it. How a sender tells the others how far
    /// it got, in terms every replica's journal shares.
    pub(crate) fn places_at(&self, seq: u64) -> (String, String) {
        let inner = self.inner.lock().expect("journal lock");
        let mut commit = inner.base_cursor.clone();
        let mut report = inner.base_report_cursor.clone();
        for entry in inner.entries.iter().take_while(|e| e.seq <= seq) {
            if !entry.cursor.is_empty() {
                commit = entry.cursor.clone();
            }
            if !entry.report_cursor.is_empty() {
                report = entry.report_cursor.clone();
            }
        }
        (commit, report)
    }

    /// The last seq written.
    pub(crate) fn last_seq(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Tells when entries are added.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Appends an event (its `seq` is set here) and returns its seq.
    pub(crate) fn append(&self, mut entry: Entry) -> std::io::Result<u64> {
        let mut inner = self.inner.lock().expect("journal lock");
        entry.seq = inner.entries.back().map_or(inner.base_seq, |e| e.seq) + 1;
        let mut line =
            serde_json::to_vec(&Line::Entry(Box::new(entry.clone()))).expect("entries serialise");
        line.push(b'\n');
        if inner.torn {
            // The last append failed part-way: end that line first.
            line.insert(0, b'\n');
        }
        inner.torn = true;
        inner.file.write_all(&line)?;
        inner.file.flush()?;
        inner.torn = false;
        let seq = entry.seq;
        inner.entries.push_back(entry);
        drop(inner);
        self.latest.send_replace(seq);
        Ok(seq)
    }

    /// The entries after `seq`, at most `limit`.
    pub(crate) fn after(&self, seq: u64, limit: usize) -> Vec<Entry> {
        let inner = self.inner.lock().expect("journal lock");
        inner
            .entries
            .iter()
            .filter(|e| e.seq > seq)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Drops the entries every destination has (seq at most `acked`),
    /// rewriting the file when that frees enough.
    pub(crate) fn compact(&self, acked: u64) {
        let mut guard = self.inner.lock().expect("journal lock");
        let inner = &mut *guard;
        let droppable = inner.entries.iter().take_while(|e| e.seq <= acked).count();
        if droppable < COMPACT_AT {
            return;
        }
        let mut base_cursor = inner.base_cursor.clone();
        let mut base_report_cursor = inner.base_report_cursor.clone();
        for entry in inner.entries.drain(..droppable) {
            if !entry.cursor.is_empty() {
                base_cursor = entry.cursor;
            }
            if !entry.report_cursor.is_empty() {
                base_report_cursor = entry.report_cursor;
            }
            inner.base_seq = entry.seq;
        }
        inner.base_cursor = base_cursor;
        inner.base_report_cursor = base_report_cursor;
        match rewrite(
            &self.path,
            inner.base_seq,
            &inner.base_cursor,
            &inner.base_report_cursor,
            &inner.entries,
        ) {
            Ok(file) => {
                inner.file = file;
                inner.torn = false;
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot rewrite the notification journal")
            }
        }
    }
}

/// Entries every destination has before the file is rewritten.
const COMPACT_AT: usize = 256;

/// Writes the journal anew beside `path` and renames it over; returns the
/// file opened for appending.
fn rewrite(
    path: &Path,
    base_seq: u64,
    base_cursor: &str,
    base_report_cursor: &str,
    entries: &VecDeque<Entry>,
) -> std::io::Result<std::fs::File> {
    let temporary = path.with_extension("jsonl.tmp");
    let mut text = serde_json::to_vec(&Line::Header(Header {
        base_seq,
        base_cursor: base_cursor.to_string(),
        base_report_cursor: base_report_cursor.to_string(),
    }))
    .expect("headers serialise");
    text.push(b'\n');
    for entry in entries {
        text.extend(
            serde_json::to_vec(&Line::Entry(Box::new(entry.clone()))).expect("entries serialise"),
        );
        text.push(b'\n');
    }
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cursor: &str) -> Entry {
        Entry {
            seq: 0,
            id: format!("id-{cursor}"),
            kind: Kind::Release,
            time: 1,
            cursor: cursor.into(),
            report_cursor: String::new(),
            service: "shop".into(),
            environment: "dev".into(),
            namespace: String::new(),
            artifact_id: "a".into(),
            branch: String::new(),
            author: String::new(),
            actor: String::new(),
            commit: String::new(),
            build_url: String::new(),
            source_url: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn appends_survive_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "start", "").unwrap();
        assert_eq!(journal.last_cursor(), "start");
        assert_eq!(journal.append(entry("c1")).unwrap(), 1);
        assert_eq!(journal.append(entry("")).unwrap(), 2);
        drop(journal);
        let path = dir.path().join("journal.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"seq\": 3, \"id\": \"torn").unwrap();
        let journal = Journal::open(dir.path(), "ignored", "").unwrap();
        assert_eq!(journal.last_seq(), 2);
        assert_eq!(journal.last_cursor(), "c1");
        assert_eq!(journal.after(1, 10).len(), 1);
        assert_eq!(journal.append(entry("c3")).unwrap(), 3);
    }

    #[test]
    fn compaction_keeps_numbers_and_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "start", "").unwrap();
        for n in 0..COMPACT_AT + 10 {
            journal.append(entry(&format!("c{n}"))).unwrap();
        }
        journal.compact(COMPACT_AT as u64 + 5);
        drop(journal);
        let journal = Journal::open(dir.path(), "ignored", "").unwrap();
        assert_eq!(journal.last_seq(), COMPACT_AT as u64 + 10);
        assert_eq!(journal.after(0, 100).len(), 5);
        assert_eq!(journal.last_cursor(), format!("c{}", COMPACT_AT + 9));
        journal.compact(COMPACT_AT as u64 + 10);
        assert_eq!(journal.after(0, 100).len(), 5, "too little to rewrite for");
    }
}
