//! Names and relative paths as the rest of scopefs sees them.
//!
//! Names from the kernel are bytes. They are validated once into [`Name`] and joined into a
//! [`RelPath`], the normalised path relative to SOURCE that the policy decides on. Neither type
//! can hold `.`, `..`, an empty component, a `/` inside a name or a NUL, so no code after the
//! decoder has to think about those. Nothing here touches the file system.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::ops::Bound;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The longest name a directory entry may have, in bytes (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// Why a name or path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("`.` or `..` is not a name")]
    Dot,
    #[error("a name cannot contain `/`")]
    Slash,
    #[error("a name cannot contain a NUL byte")]
    Nul,
    #[error("a name is at most 255 bytes")]
    TooLong,
}

/// One validated path component: non-empty, not `.` or `..`, no `/` or NUL, at most 255 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

impl Name {
    /// Validates a component received from the kernel or read from a directory.
    pub fn new(bytes: &[u8]) -> Result<Self, NameError> {
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes == b"." || bytes == b".." {
            return Err(NameError::Dot);
        }
        if bytes.contains(&b'/') {
            return Err(NameError::Slash);
        }
        if bytes.contains(&0) {
            return Err(NameError::Nul);
        }
        if bytes.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        Ok(Name(bytes.into()))
    }

    /// Validates an `OsStr` component.
    pub fn from_os(name: &OsStr) -> Result<Self, NameError> {
        Self::new(name.as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_os_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

/// A normalised path relative to SOURCE: validated [`Name`] components joined by `/`, with no
/// leading or trailing slash. The empty path is SOURCE itself.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// The root of the view.
    pub fn root() -> Self {
        RelPath(Vec::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a user-supplied relative path such as `src/../.env`, `./.env` or `.env/`,
    /// normalising `.`, empty components and `..` lexically. A path that is absolute or climbs
    /// above the root is refused.
    pub fn parse(path: &[u8]) -> Result<Self, RelPathError> {
        if path.first() == Some(&b'/') {
            return Err(RelPathError::Absolute);
        }
        let mut out = RelPath::root();
        for part in path.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if !out.pop() {
                        return Err(RelPathError::Escapes);
                    }
                }
                other => {
                    let name = Name::new(other).map_err(RelPathError::Name)?;
                    out.push(&name);
                }
            }
        }
        Ok(out)
    }

    /// Like [`RelPath::parse`] for an `OsStr` or `Path`.
    pub fn parse_os(path: &OsStr) -> Result<Self, RelPathError> {
        Self::parse(path.as_bytes())
    }

    /// This path with one more component.
    pub fn join(&self, name: &Name) -> Self {
        let mut out = self.clone();
        out.push(name);
        out
    }

    /// Appends a component.
    pub fn push(&mut self, name: &Name) {
        if !self.0.is_empty() {
            self.0.push(b'/');
        }
        self.0.extend_from_slice(name.as_bytes());
    }

    /// Removes the last component; false at the root.
    pub fn pop(&mut self) -> bool {
        if self.0.is_empty() {
            return false;
        }
        match self.0.iter().rposition(|b| *b == b'/') {
            Some(i) => self.0.truncate(i),
            None => self.0.clear(),
        }
        true
    }

    /// The parent path, or `None` at the root.
    pub fn parent(&self) -> Option<RelPath> {
        let mut p = self.clone();
        p.pop().then_some(p)
    }

    /// The last component, or `None` at the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.0.is_empty() {
            return None;
        }
        let start = self.0.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
        self.0.get(start..)
    }

    /// The components from the root down.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == b'/').filter(|c| !c.is_empty())
    }

    /// Every proper ancestor from the shortest (first component) to the parent; the root is not
    /// included.
    pub fn ancestors(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = &self.0;
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .filter_map(move |(i, _)| bytes.get(..i))
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path as an `OsStr`; `.` for the root, so it can be passed to `*at` calls.
    pub fn as_os_str(&self) -> &OsStr {
        if self.0.is_empty() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(&self.0)
        }
    }

    pub fn as_path(&self) -> &Path {
        Path::new(self.as_os_str())
    }

    pub fn into_os_string(self) -> OsString {
        OsString::from_vec(self.0)
    }

    /// Whether `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        if other.0.is_empty() {
            return true;
        }
        self.0.starts_with(&other.0) && matches!(self.0.get(other.0.len()), None | Some(b'/'))
    }

    /// The bounds, in this type's (byte) order, that enclose exactly the paths strictly
    /// beneath `self`, so an ordered set finds them with one range query: each starts with
    /// `self/`, and `0` is the byte after `/`. The bounds themselves are not valid paths.
    pub fn beneath_bounds(&self) -> (Bound<RelPath>, Bound<RelPath>) {
        if self.0.is_empty() {
            return (Bound::Excluded(RelPath::root()), Bound::Unbounded);
        }
        let mut start = self.0.clone();
        start.push(b'/');
        let mut end = self.0.clone();
        end.push(b'/' + 1);
        (
            Bound::Included(RelPath(start)),
            Bound::Excluded(RelPath(end)),
        )
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_os_str())
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            write!(f, "{}", String::from_utf8_lossy(&self.0))
        }
    }
}

/// Why a user-supplied relative path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    #[error("the path is absolute; give it relative to SOURCE")]
    Absolute,
    #[error("the path climbs above SOURCE with `..`")]
    Escapes,
    #[error("{0}")]
    Name(NameError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(Name::new(b"a").is_ok());
        assert_eq!(Name::new(b""), Err(NameError::Empty));
        assert_eq!(Name::new(b"."), Err(NameError::Dot));
        assert_eq!(Name::new(b".."), Err(NameError::Dot));
        assert_eq!(Name::new(b"a/b"), Err(NameError::Slash));
        assert_eq!(Name::new(b"x\0junk"), Err(NameError::Nul));
        assert!(Name::new(&[b'a'; 255]).is_ok());
        assert_eq!(Name::new(&[b'a'; 256]), Err(NameError::TooLong));
        assert!(Name::new(b"\xff.env").is_ok());
    }

    #[test]
    fn paths_normalise_lexically() {
        let p = |s: &str| RelPath::parse(s.as_bytes()).map(|p| p.to_string());
        assert_eq!(p("src/../.env"), Ok(".env".into()));
        assert_eq!(p("./.env"), Ok(".env".into()));
        assert_eq!(p(".env/"), Ok(".env".into()));
        assert_eq!(p("a//b/./c"), Ok("a/b/c".into()));
        assert_eq!(p(""), Ok(".".into()));
        assert_eq!(p("/etc"), Err(RelPathError::Absolute));
        assert_eq!(p("a/../.."), Err(RelPathError::Escapes));
    }

    #[test]
    fn ancestors_and_parents() {
        let p = RelPath::parse(b"a/b/c").unwrap_or_default();
        let anc: Vec<&[u8]> = p.ancestors().collect();
        assert_eq!(anc, vec![&b"a"[..], &b"a/b"[..]]);
        assert_eq!(p.file_name(), Some(&b"c"[..]));
        assert_eq!(p.parent().map(|p| p.to_string()), Some("a/b".into()));
        assert!(p.starts_with(&RelPath::parse(b"a/b").unwrap_or_default()));
        assert!(!p.starts_with(&RelPath::parse(b"a/bc").unwrap_or_default()));
        assert_eq!(p.depth(), 3);
    }

    #[test]
    fn beneath_bounds_enclose_exactly_the_descendants() {
        let p = |s: &str| RelPath::parse(s.as_bytes()).unwrap();
        let all: std::collections::BTreeSet<RelPath> = [
            "a", "a/b", "a/b/c", "a/b/c/d", "a/b.txt", "a/b0", "a/bc", "a/b-", "a/a", "b", "ab",
        ]
        .iter()
        .map(|s| p(s))
        .collect();
        let beneath = |path: &RelPath| -> Vec<String> {
            all.range(path.beneath_bounds())
                .map(|q| q.to_string())
                .collect()
        };
        assert_eq!(beneath(&p("a/b")), ["a/b/c", "a/b/c/d"]);
        assert_eq!(beneath(&p("a/b/c/d")), Vec::<String>::new());
        assert_eq!(beneath(&p("a")).len(), 8);
        assert_eq!(beneath(&RelPath::root()).len(), all.len());
        for path in &all {
            let by_range = beneath(path);
            let by_scan: Vec<String> = all
                .iter()
                .filter(|q| *q != path && q.starts_with(path))
                .map(|q| q.to_string())
                .collect();
            assert_eq!(by_range, by_scan, "beneath {path}");
        }
    }
}
