//! Reading `/proc/self/mountinfo`: which mounts exist, and which of them are scopefs views.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields scopefs needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub options: String,
}

/// The mount-source prefix of a scopefs view; the daemon's pid follows it (`scopefs:4242`).
pub const SOURCE_PREFIX: &str = "scopefs:";

impl MountEntry {
    /// The daemon's pid, if this is a scopefs view.
    pub fn scopefs_pid(&self) -> Option<u32> {
        // fuser's direct mount names the type plain `fuse`; fusermount3 gives `fuse.scopefs`.
        if self.fs_type != "fuse" && self.fs_type != "fuse.scopefs" {
            return None;
        }
        self.source.strip_prefix(SOURCE_PREFIX)?.parse().ok()
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(oct) = bytes.get(i + 1..i + 4) {
                if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    let v = oct
                        .iter()
                        .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                    if let Ok(v) = u8::try_from(v) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Parses mountinfo text.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_string();
            let source = String::from_utf8_lossy(&unescape(right.next()?)).into_owned();
            Some(MountEntry {
                mount_point: PathBuf::from(OsString::from_vec(unescape(left.get(4)?))),
                options: (*left.get(5)?).to_string(),
                fs_type,
                source,
            })
        })
        .collect()
}

/// The mounts of this process's mount namespace.
pub fn read() -> io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The topmost mount at exactly `path` (already canonical), if any.
pub fn find(path: &Path) -> io::Result<Option<MountEntry>> {
    Ok(read()?.into_iter().rev().find(|m| m.mount_point == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopefs_lines() {
        let text = "36 35 98:0 / /mnt/a\\040b rw,nosuid,nodev - fuse.scopefs scopefs:4242 ro\n\
                    37 35 98:0 / /x rw - ext4 /dev/vda rw\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 2);
        let first = entries.first().cloned().unwrap_or_else(|| MountEntry {
            mount_point: PathBuf::new(),
            fs_type: String::new(),
            source: String::new(),
            options: String::new(),
        });
        assert_eq!(first.mount_point, PathBuf::from("/mnt/a b"));
        assert_eq!(first.scopefs_pid(), Some(4242));
        assert_eq!(entries.get(1).and_then(MountEntry::scopefs_pid), None);
    }
}
