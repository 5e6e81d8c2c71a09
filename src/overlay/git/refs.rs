//! The refs of a repository read as files (loose refs, `packed-refs`, `HEAD`), in SOURCE and
//! in the view (SOURCE's with the agent's changes on top). Ref files are data here: only object
//! ids and ref names are taken from them.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use super::super::changes::{Change, EntryKind, Op};
use crate::path::{Name, RelPath};
use crate::sys::tree::open_file_beneath;
use crate::sys::{self, FileType, Open};

/// The most bytes read from one ref file, `HEAD` or `packed-refs`.
const REF_FILE_MAX: u64 = 256 * 1024 * 1024;

/// The refs of a repository as its files say: ref name -> the file's content.
#[derive(Debug, Default, Clone)]
pub(super) struct RefFiles {
    loose: BTreeMap<String, Vec<u8>>,
    packed: Option<Vec<u8>>,
    head: Option<Vec<u8>>,
}

/// What a ref or `HEAD` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Oid(String),
    Symbolic(String),
}

impl Target {
    fn parse(content: &[u8]) -> Option<Target> {
        let text = std::str::from_utf8(content).ok()?.trim();
        if let Some(name) = text.strip_prefix("ref:") {
            return Some(Target::Symbolic(name.trim().to_string()));
        }
        is_oid(text).then(|| Target::Oid(text.to_string()))
    }

    pub(super) fn show(&self) -> String {
        match self {
            Target::Oid(oid) => oid.clone(),
            Target::Symbolic(name) => name.clone(),
        }
    }
}

fn is_oid(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl RefFiles {
    /// Every ref with the object id it resolves to (packed first, loose ones win).
    pub(super) fn resolved(&self) -> BTreeMap<String, String> {
        let mut targets: BTreeMap<String, Target> = BTreeMap::new();
        if let Some(packed) = &self.packed {
            for line in packed.split(|b| *b == b'\n') {
                let Ok(line) = std::str::from_utf8(line) else {
                    continue;
                };
                if line.starts_with('#') || line.starts_with('^') {
                    continue;
                }
                if let Some((oid, name)) = line.trim().split_once(' ') {
                    if is_oid(oid) {
                        targets.insert(name.to_string(), Target::Oid(oid.to_string()));
                    }
                }
            }
        }
        for (name, content) in &self.loose {
            if let Some(target) = Target::parse(content) {
                targets.insert(name.clone(), target);
            }
        }
        targets
            .keys()
            .filter_map(|name| Some((name.clone(), follow(&targets, name)?)))
            .collect()
    }

    pub(super) fn head(&self) -> Option<Target> {
        self.head.as_deref().and_then(Target::parse)
    }

    pub(super) fn head_oid(&self) -> Option<String> {
        match self.head()? {
            Target::Oid(oid) => Some(oid),
            Target::Symbolic(name) => self.resolved().get(&name).cloned(),
        }
    }
}

/// The object id `name` leads to through symbolic refs (at most 5 of them).
fn follow(targets: &BTreeMap<String, Target>, name: &str) -> Option<String> {
    let mut name = name.to_string();
    for _ in 0..5 {
        match targets.get(&name)? {
            Target::Oid(oid) => return Some(oid.clone()),
            Target::Symbolic(next) => name = next.clone(),
        }
    }
    None
}

/// The bytes of the regular file `path` beneath `root` (never following a symlink), or `None`
/// when nothing, or something other than a regular file, is there.
pub(super) fn read_file(root: BorrowedFd<'_>, path: &RelPath) -> io::Result<Option<Vec<u8>>> {
    let file = match open_file_beneath(root, path) {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EINVAL | libc::EISDIR)
            ) || e.kind() == io::ErrorKind::InvalidInput =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    file.take(REF_FILE_MAX).read_to_end(&mut data)?;
    Ok(Some(data))
}

/// A ref's name from its path beneath the `.git` directory (`refs/heads/main`).
fn ref_name(git_dir: &RelPath, path: &RelPath) -> Option<String> {
    let rest = path.as_bytes().strip_prefix(git_dir.as_bytes())?;
    let rest = rest.strip_prefix(b"/")?;
    let name = std::str::from_utf8(rest).ok()?;
    name.starts_with("refs/").then(|| name.to_string())
}

/// The ref files of the repository `git_dir` beneath `root`.
pub(super) fn read_refs(root: BorrowedFd<'_>, git_dir: &RelPath) -> io::Result<RefFiles> {
    let mut files = RefFiles {
        packed: read_file(root, &child(git_dir, b"packed-refs"))?,
        head: read_file(root, &child(git_dir, b"HEAD"))?,
        ..RefFiles::default()
    };
    let mut stack = vec![child(git_dir, b"refs")];
    while let Some(dir) = stack.pop() {
        let fd = match sys::resolve(root, &dir, Open::Dir) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => continue,
            Err(e) => return Err(e),
        };
        for entry in sys::read_dir(fd.as_fd())? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            let path = dir.join(&name);
            match sys::stat_at(fd.as_fd(), &name)?.kind {
                FileType::Dir => stack.push(path),
                FileType::File => {
                    if let (Some(name), Some(data)) =
                        (ref_name(git_dir, &path), read_file(root, &path)?)
                    {
                        files.loose.insert(name, data);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(files)
}

/// The view's ref files: SOURCE's with the agent's changes on top.
pub(super) fn view_refs(
    upper: BorrowedFd<'_>,
    source: &RefFiles,
    git_dir: &RelPath,
    changes: &[Change],
) -> io::Result<RefFiles> {
    let mut view = source.clone();
    let (packed, head) = (child(git_dir, b"packed-refs"), child(git_dir, b"HEAD"));
    for change in changes {
        let content = match (change.op, change.kind) {
            (Op::Delete, _) => None,
            (_, EntryKind::File) => read_file(upper, &change.path)?,
            _ => None,
        };
        if change.path == packed {
            view.packed = content;
        } else if change.path == head {
            view.head = content;
        } else if let Some(name) = ref_name(git_dir, &change.path) {
            if matches!(change.op, Op::Delete | Op::TypeChange) {
                // A deleted directory of refs takes every ref beneath it along.
                let prefix = format!("{name}/");
                view.loose
                    .retain(|n, _| *n != name && !n.starts_with(prefix.as_str()));
            }
            if let Some(content) = content {
                view.loose.insert(name, content);
            }
        }
    }
    Ok(view)
}

pub(super) fn child(dir: &RelPath, name: &[u8]) -> RelPath {
    match Name::new(name) {
        Ok(name) => dir.join(&name),
        Err(_) => dir.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refs_resolve_packed_then_loose_then_symbolic() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let files = RefFiles {
            loose: BTreeMap::from([
                ("refs/heads/main".to_string(), format!("{b}\n").into_bytes()),
                (
                    "refs/remotes/origin/HEAD".to_string(),
                    b"ref: refs/heads/main\n".to_vec(),
                ),
                ("refs/heads/junk".to_string(), b"not an id\n".to_vec()),
            ]),
            packed: Some(
                format!("# pack-refs with: peeled\n{a} refs/heads/main\n{a} refs/tags/v1\n^{b}\n")
                    .into_bytes(),
            ),
            head: Some(b"ref: refs/heads/main\n".to_vec()),
        };
        let refs = files.resolved();
        assert_eq!(refs.get("refs/heads/main"), Some(&b));
        assert_eq!(refs.get("refs/tags/v1"), Some(&a));
        assert_eq!(refs.get("refs/remotes/origin/HEAD"), Some(&b));
        assert_eq!(refs.get("refs/heads/junk"), None);
        assert_eq!(files.head_oid(), Some(b));
    }
}
