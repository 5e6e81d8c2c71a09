//! The overlay's provenance records (`origins`): the state of SOURCE at each path the first
//! time the overlay touched it, which `apply` compares with SOURCE as it is then.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::files::{open_own, open_own_or_create, write_atomic};
use super::{ORIGINS, Overlay, OverlayError, io_err};
use crate::path::RelPath;
use crate::sys::{self, FileType};

/// The state of SOURCE at a path, as recorded the first time the overlay touched the path and as
/// compared again by `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerState {
    Absent,
    /// An entry the view hid from the agent: whatever the overlay holds at this path (or
    /// beneath it) is the agent's own, and `apply` never writes over or deletes SOURCE's.
    Hidden,
    Dir,
    File {
        ino: u64,
        size: u64,
        mtime_ns: i128,
    },
    Symlink {
        ino: u64,
        size: u64,
        mtime_ns: i128,
    },
    Other {
        ino: u64,
        size: u64,
        mtime_ns: i128,
    },
}

/// Nanoseconds since the epoch (negative before it).
pub fn mtime_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

impl LowerState {
    /// The state of an entry from its `stat` (`None`: nothing there).
    pub fn of(stat: Option<&sys::Stat>) -> LowerState {
        let Some(st) = stat else {
            return LowerState::Absent;
        };
        let (ino, size, mtime_ns) = (st.ino, st.size, mtime_ns(st.mtime));
        match st.kind {
            FileType::Dir => LowerState::Dir,
            FileType::File => LowerState::File {
                ino,
                size,
                mtime_ns,
            },
            FileType::Symlink => LowerState::Symlink {
                ino,
                size,
                mtime_ns,
            },
            FileType::Fifo | FileType::Socket | FileType::CharDevice | FileType::BlockDevice => {
                LowerState::Other {
                    ino,
                    size,
                    mtime_ns,
                }
            }
        }
    }

    /// The record's words after the path, e.g. `file 12 5 1700000000000000000`.
    fn to_words(self) -> String {
        match self {
            LowerState::Absent => "absent".into(),
            LowerState::Hidden => "hidden".into(),
            LowerState::Dir => "dir".into(),
            LowerState::File {
                ino,
                size,
                mtime_ns,
            } => format!("file {ino} {size} {mtime_ns}"),
            LowerState::Symlink {
                ino,
                size,
                mtime_ns,
            } => format!("symlink {ino} {size} {mtime_ns}"),
            LowerState::Other {
                ino,
                size,
                mtime_ns,
            } => format!("other {ino} {size} {mtime_ns}"),
        }
    }

    fn from_words<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<LowerState> {
        let kind = words.next()?;
        let mut nums = || -> Option<(u64, u64, i128)> {
            let ino = words.next()?.parse().ok()?;
            let size = words.next()?.parse().ok()?;
            let mtime_ns = words.next()?.parse().ok()?;
            Some((ino, size, mtime_ns))
        };
        let state = match kind {
            "absent" => LowerState::Absent,
            "hidden" => LowerState::Hidden,
            "dir" => LowerState::Dir,
            "file" => {
                let (ino, size, mtime_ns) = nums()?;
                LowerState::File {
                    ino,
                    size,
                    mtime_ns,
                }
            }
            "symlink" => {
                let (ino, size, mtime_ns) = nums()?;
                LowerState::Symlink {
                    ino,
                    size,
                    mtime_ns,
                }
            }
            "other" => {
                let (ino, size, mtime_ns) = nums()?;
                LowerState::Other {
                    ino,
                    size,
                    mtime_ns,
                }
            }
            _ => return None,
        };
        words.next().is_none().then_some(state)
    }
}

/// The bytes `origins` writes as they are: `[A-Za-z0-9._~/+-]`; every other byte, `%` included,
/// is written `%XX`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b'+')
    .remove(b'-');

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'/' | b'+' | b'-')
}

/// Percent-encodes every byte outside `[A-Za-z0-9._~/+-]`, `%` included, as `%XX`.
pub fn percent_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, ESCAPED).to_string()
}

/// The inverse of [`percent_encode`]; `None` for a malformed escape or an unescaped byte that
/// should have been escaped (decoding alone would let both through).
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        let well_formed = if b == b'%' {
            bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
                && bytes.next().is_some_and(|l| l.is_ascii_hexdigit())
        } else {
            is_plain(b)
        };
        if !well_formed {
            return None;
        }
    }
    Some(percent_encoding::percent_decode_str(text).collect())
}

/// A path as written in `origins`: percent-encoded, the root as `.`.
pub fn encode_path(path: &RelPath) -> String {
    if path.is_root() {
        ".".into()
    } else {
        percent_encode(path.as_bytes())
    }
}

/// The inverse of [`encode_path`]; `None` unless the text is a normalised path.
pub fn decode_path(text: &str) -> Option<RelPath> {
    if text == "." {
        return Some(RelPath::root());
    }
    let bytes = percent_decode(text)?;
    let path = RelPath::parse(&bytes).ok()?;
    (path.as_bytes() == bytes.as_slice() && !path.is_root()).then_some(path)
}

/// One line of `origins`, without its newline.
fn origin_line(path: &RelPath, state: LowerState) -> String {
    format!("{} {}", encode_path(path), state.to_words())
}

fn parse_origin_line(line: &str) -> Option<(RelPath, LowerState)> {
    let mut words = line.split(' ');
    let path = decode_path(words.next()?)?;
    let state = LowerState::from_words(words)?;
    Some((path, state))
}

/// Parses `origins`: complete lines only (a torn last line is ignored), the first record of a
/// path wins, malformed lines are skipped.
fn parse_origins(data: &[u8]) -> HashMap<RelPath, LowerState> {
    let mut map = HashMap::new();
    let complete = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => data.get(..i).unwrap_or_default(),
        None => return map,
    };
    for line in complete.split(|b| *b == b'\n') {
        let parsed = std::str::from_utf8(line).ok().and_then(parse_origin_line);
        match parsed {
            Some((path, state)) => {
                map.entry(path).or_insert(state);
            }
            None if line.is_empty() => {}
            None => tracing::warn!(
                line = %String::from_utf8_lossy(line),
                "skipping a malformed line of the overlay's origins file"
            ),
        }
    }
    map
}

/// The `origins` file: records in memory and, when the overlay may be changed, the handle
/// appended to.
pub(super) struct Origins {
    map: HashMap<RelPath, LowerState>,
    file: Option<File>,
}

/// Opens `origins`; with `writable`, for appending too, after cutting a torn last line so the
/// next record starts on a line of its own.
pub(super) fn open_origins(dir: &Path, writable: bool) -> Result<Origins, OverlayError> {
    let path = dir.join(ORIGINS);
    let file = if writable {
        Some(open_own_or_create(dir, ORIGINS)?)
    } else {
        open_own(dir, ORIGINS, false)?
    };
    let mut data = Vec::new();
    if let Some(mut file) = file.as_ref() {
        file.read_to_end(&mut data).map_err(io_err("read", &path))?;
    }
    let map = parse_origins(&data);
    let Some(mut file) = file.filter(|_| writable) else {
        return Ok(Origins { map, file: None });
    };
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete != data.len() {
        file.set_len(complete as u64)
            .map_err(io_err("repair the torn last line of", &path))?;
    }
    // Records are appended: this handle is the only writer while the lock is held.
    file.seek(SeekFrom::End(0))
        .map_err(io_err("open for appending", &path))?;
    Ok(Origins {
        map,
        file: Some(file),
    })
}

impl Overlay {
    /// Records the lower state of `path` unless the path already has a record; appends a line
    /// and, unless SOURCE has nothing at `path`, fdatasyncs before returning, so the record is
    /// on disk before the change it describes is made. Thread-safe (&self; internal Mutex).
    ///
    /// A record of an absent entry is not synced on its own (the next synced record carries
    /// it): losing it in a crash changes nothing, since `apply` treats a path without a
    /// record as absent for an addition and as a conflict for anything else: as the record
    /// would have decided, or more strictly. This keeps creating many new files (an untar, a
    /// build) from costing one disk flush each.
    pub fn record_origin(&self, path: &RelPath, state: LowerState) -> io::Result<()> {
        let mut origins = self.origins.lock();
        if origins.map.contains_key(path) {
            return Ok(());
        }
        let Some(file) = origins.file.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the overlay was opened read-only for review",
            ));
        };
        let line = format!("{}\n", origin_line(path, state));
        file.write_all(line.as_bytes())?;
        if state != LowerState::Absent {
            file.sync_data()?;
        }
        origins.map.insert(path.clone(), state);
        Ok(())
    }

    /// The recorded lower state of `path`, if the overlay has touched it.
    pub fn origin(&self, path: &RelPath) -> Option<LowerState> {
        self.origins.lock().map.get(path).copied()
    }

    /// Rewrites `origins` keeping only the records for which `keep` is true (temporary file and
    /// rename), then appends to the new file. Needs the lock.
    pub fn retain_origins(&self, keep: impl Fn(&RelPath) -> bool) -> io::Result<()> {
        let mut origins = self.origins.lock();
        if origins.file.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the overlay was opened read-only for review",
            ));
        }
        origins.map.retain(|path, _| keep(path));
        let mut records: Vec<(&RelPath, &LowerState)> = origins.map.iter().collect();
        records.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::new();
        for (path, state) in records {
            text.push_str(&origin_line(path, *state));
            text.push('\n');
        }
        write_atomic(&self.dir, ORIGINS, text.as_bytes())?;
        let mut file = open_own(&self.dir, ORIGINS, true)
            .map_err(|e| io::Error::other(e.to_string()))?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        file.seek(SeekFrom::End(0))?;
        origins.file = Some(file);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::fs::OpenOptions;

    use super::super::tests::{fixture, p};
    use super::*;

    #[test]
    fn origins_first_record_wins_and_torn_lines_are_ignored() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let file = LowerState::File {
            ino: 7,
            size: 3,
            mtime_ns: -5,
        };
        ov.record_origin(&p("a/b"), file).unwrap();
        ov.record_origin(&p("a/b"), LowerState::Absent).unwrap();
        ov.record_origin(&p("new"), LowerState::Absent).unwrap();
        ov.record_origin(&RelPath::root(), LowerState::Dir).unwrap();
        assert_eq!(ov.origin(&p("a/b")), Some(file));
        drop(ov);
        let text = std::fs::read_to_string(f.overlay.join(ORIGINS)).unwrap();
        assert_eq!(text, "a/b file 7 3 -5\nnew absent\n. dir\n");
        // A crash mid-append leaves a torn line; a duplicate later line never wins.
        let mut torn = OpenOptions::new()
            .append(true)
            .open(f.overlay.join(ORIGINS))
            .unwrap();
        torn.write_all(b"new dir\nx sym").unwrap();
        drop(torn);
        let review = Overlay::open_for_review(&f.overlay, false).unwrap();
        assert_eq!(review.origin(&p("new")), Some(LowerState::Absent));
        assert_eq!(review.origin(&p("x")), None);
        drop(review);
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        ov.record_origin(&p("x"), LowerState::Dir).unwrap();
        drop(ov);
        let text = std::fs::read_to_string(f.overlay.join(ORIGINS)).unwrap();
        assert!(text.ends_with("new dir\nx dir\n"), "{text}");
        let ov = Overlay::open_for_review(&f.overlay, true).unwrap();
        assert_eq!(ov.origin(&p("x")), Some(LowerState::Dir));
        ov.retain_origins(|path| !path.starts_with(&p("a")))
            .unwrap();
        ov.record_origin(&p("z"), LowerState::Absent).unwrap();
        drop(ov);
        let text = std::fs::read_to_string(f.overlay.join(ORIGINS)).unwrap();
        assert_eq!(text, ". dir\nnew absent\nx dir\nz absent\n");
        let review = Overlay::open_for_review(&f.overlay, false).unwrap();
        assert!(review.record_origin(&p("q"), LowerState::Absent).is_err());
    }

    #[test]
    fn percent_encoding_round_trips() {
        let all: Vec<u8> = (0u8..=255).collect();
        assert_eq!(percent_decode(&percent_encode(&all)).unwrap(), all);
        for b in 0u8..=255 {
            let plain = b.is_ascii_alphanumeric() || b"._~/+-".contains(&b);
            let want = if plain {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(percent_encode(&[b]), want, "byte {b:#04x}");
        }
        assert_eq!(percent_decode("%ff%0a"), Some(vec![0xff, b'\n']));
        assert_eq!(percent_decode("%g0"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_encode(b"a b%\n\xff/c.rs"), "a%20b%25%0A%FF/c.rs");
        let weird = RelPath::parse(b"d\xffir/new\nline %20 .wh.x").unwrap();
        let enc = encode_path(&weird);
        assert!(!enc.contains(' ') && !enc.contains('\n'));
        assert_eq!(decode_path(&enc), Some(weird.clone()));
        assert_eq!(decode_path("."), Some(RelPath::root()));
        assert_eq!(decode_path("a/../b"), None);
        assert_eq!(decode_path("a//b"), None);
        assert_eq!(decode_path("a%2"), None);
        assert_eq!(decode_path("a b"), None);
        let line = origin_line(
            &weird,
            LowerState::Symlink {
                ino: 1,
                size: 2,
                mtime_ns: 3,
            },
        );
        assert_eq!(
            parse_origin_line(&line),
            Some((
                weird,
                LowerState::Symlink {
                    ino: 1,
                    size: 2,
                    mtime_ns: 3
                }
            ))
        );
        assert_eq!(parse_origin_line("a file 1 2"), None);
        assert_eq!(parse_origin_line("a dir extra"), None);
    }
}
