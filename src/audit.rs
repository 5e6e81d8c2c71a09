//! The audit log (SPEC §6): one JSON object per line, for the operator, never the agent.
//!
//! Request threads only build a small record and hand it over with a non-blocking send; a
//! writer thread formats, collapses repeats and appends to the file. A full channel, a full
//! disk or an unwritable log never blocks or fails a request: the events are counted as
//! dropped and reported on stderr. Every event names the [`Request`] it was part of: refusals are
//! written by the FUSE adapter when it answers with one, changes and reads by the view where
//! it makes them, each given the request explicitly.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::path::RelPath;
use crate::policy::AuditEvents;

/// How many records may wait for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// How long a repeated event is held back to be counted before it is written.
const COLLAPSE: Duration = Duration::from_millis(500);

/// The kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A refused write, or a lookup of a hidden name that exists.
    Denied,
    /// A change made through the view.
    Write,
    /// A read through the view.
    Read,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Denied => "denied",
            Event::Write => "write",
            Event::Read => "read",
        }
    }
}

/// One event, as a request thread hands it over.
#[derive(Debug, Clone)]
struct Record {
    event: Event,
    op: &'static str,
    path: RelPath,
    errno: Option<i32>,
    rule: Option<String>,
    pid: u32,
    uid: u32,
    comm: String,
}

impl Record {
    /// Whether `other` repeats this event: the same thing refused or done by the same program
    /// of the same user (the pid may differ: `rm` in a loop is one program).
    fn repeats(&self, other: &Record) -> bool {
        (
            self.event, self.op, &self.path, self.errno, &self.rule, self.uid, &self.comm,
        ) == (
            other.event,
            other.op,
            &other.path,
            other.errno,
            &other.rule,
            other.uid,
            &other.comm,
        )
    }
}

/// One line of the log, in the field order of SPEC §6.
#[derive(serde::Serialize)]
struct Line<'a> {
    time: String,
    event: &'static str,
    op: &'static str,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    pid: u32,
    uid: u32,
    comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

/// The request an event was part of: the operation and who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub op: &'static str,
    pub pid: u32,
    pub uid: u32,
}

/// An open audit log.
pub struct Audit {
    events: AuditEvents,
    tx: Mutex<Option<SyncSender<Record>>>,
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl Audit {
    /// Opens (appending to, or creating) the log at `path` and starts its writer.
    pub fn open(path: &Path, events: AuditEvents) -> io::Result<Audit> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = {
            let dropped = dropped.clone();
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("scopefs-audit".into())
                .spawn(move || write_loop(file, &rx, &dropped, &path))?
        };
        Ok(Audit {
            events,
            tx: Mutex::new(Some(tx)),
            dropped,
            writer: Mutex::new(Some(writer)),
            path: path.to_path_buf(),
        })
    }

    fn send(
        &self,
        event: Event,
        request: &Request,
        path: &RelPath,
        errno: Option<i32>,
        rule: Option<String>,
    ) {
        let record = Record {
            event,
            op: request.op,
            path: path.clone(),
            errno,
            rule,
            pid: request.pid,
            uid: request.uid,
            // Read now: a short-lived process is gone by the time the writer runs.
            comm: comm(request.pid),
        };
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return;
        };
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A refusal of `request`: `errno` for `path`, decided by `rule`.
    pub fn denied(&self, request: &Request, path: &RelPath, errno: i32, rule: &str) {
        self.send(
            Event::Denied,
            request,
            path,
            Some(errno),
            Some(rule.to_string()),
        );
    }

    /// A change `request` made at `path` (logged with `events = "writes"` or `"all"`).
    pub fn wrote(&self, request: &Request, path: &RelPath) {
        if self.events != AuditEvents::Denied {
            self.send(Event::Write, request, path, None, None);
        }
    }

    /// A read of `path` by `request` (logged with `events = "all"`).
    pub fn read(&self, request: &Request, path: &RelPath) {
        if self.events == AuditEvents::All {
            self.send(Event::Read, request, path, None, None);
        }
    }

    /// Writes out what is queued and stops the writer; reports dropped events on stderr.
    pub fn close(&self) {
        drop(self.tx.lock().take());
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            eprintln!(
                "scopefs: {dropped} audit event(s) could not be written to {}",
                self.path.display()
            );
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer: formats records, collapses immediate repeats into one line with a count, and
/// appends them to the file.
fn write_loop(mut file: File, rx: &mpsc::Receiver<Record>, dropped: &AtomicU64, path: &Path) {
    let mut held: Option<(Record, SystemTime, u64)> = None;
    let mut failed = false;
    let mut emit = |record: &Record, time: SystemTime, count: u64| {
        let line = format_line(record, time, count);
        if let Err(e) = append_line(&mut file, line.as_bytes()) {
            dropped.fetch_add(count, Ordering::Relaxed);
            if !failed {
                eprintln!(
                    "scopefs: cannot write the audit log {} ({e}); events are being dropped",
                    path.display()
                );
                failed = true;
            }
        } else {
            failed = false;
        }
    };
    loop {
        match rx.recv_timeout(COLLAPSE) {
            Ok(record) => match &mut held {
                Some((prev, _, count)) if prev.repeats(&record) => *count += 1,
                _ => {
                    if let Some((prev, time, count)) = held.take() {
                        emit(&prev, time, count);
                    }
                    held = Some((record, SystemTime::now(), 1));
                }
            },
            Err(RecvTimeoutError::Timeout) => {
                if let Some((prev, time, count)) = held.take() {
                    emit(&prev, time, count);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Some((prev, time, count)) = held.take() {
                    emit(&prev, time, count);
                }
                return;
            }
        }
    }
}

/// Appends `line` whole or not at all: the part of a write cut short (by a full disk) is taken
/// back, so that the log never holds half a line for the next one to be glued to.
fn append_line(file: &mut File, line: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while let Some(rest) = line.get(done..).filter(|rest| !rest.is_empty()) {
        match file.write(rest) {
            Ok(0) => return Err(take_back(file, done, io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(take_back(file, done, e)),
        }
    }
    Ok(())
}

/// Truncates the `written` bytes of a line that could not be written whole; returns `err`.
fn take_back(file: &File, written: usize, err: io::Error) -> io::Error {
    if written > 0 {
        let truncated = file
            .metadata()
            .and_then(|m| file.set_len(m.len().saturating_sub(written as u64)));
        if let Err(e) = truncated {
            tracing::warn!(error = %e, "cannot take back a line cut short in the audit log");
        }
    }
    err
}

/// The errno's symbolic name, as the audit log writes it.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EROFS => "EROFS",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EEXIST => "EEXIST",
        libc::ENOSPC => "ENOSPC",
        libc::EXDEV => "EXDEV",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        other => return format!("E{other}"),
    };
    name.to_string()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

fn format_line(record: &Record, time: SystemTime, count: u64) -> String {
    let line = Line {
        time: humantime::format_rfc3339_millis(time).to_string(),
        event: record.event.name(),
        op: record.op,
        path: record.path.to_string(),
        errno: record.errno.map(errno_name),
        rule: record.rule.as_deref(),
        pid: record.pid,
        uid: record.uid,
        comm: &record.comm,
        count: (count > 1).then_some(count),
    };
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repeats_collapse_and_lines_are_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&path, AuditEvents::Denied).unwrap();
        let p = RelPath::parse(b"src/a.rs").unwrap();
        let request = Request {
            op: "unlink",
            pid: std::process::id(),
            uid: 0,
        };
        for _ in 0..3 {
            audit.denied(&request, &p, libc::EROFS, "writes.mode=deny");
        }
        audit.wrote(&request, &p);
        audit.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["event"], "denied");
        assert_eq!(line["op"], "unlink");
        assert_eq!(line["path"], "src/a.rs");
        assert_eq!(line["errno"], "EROFS");
        assert_eq!(line["rule"], "writes.mode=deny");
        assert_eq!(line["count"], 3);
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
    }
}
