//! A harness that drives a [`View`] directly, as the kernel would, with no mount: a path is
//! walked one `lookup` at a time from the root (following symlinks where the system call would,
//! up to 40 of them), the checks the kernel makes itself before it asks the file system are
//! made here (`EEXIST` for `mkdir` onto a name, `EISDIR` for `unlink` of a directory, the
//! ancestry checks of `rename`, ...), and then the one request the kernel would send is made on
//! the view. Errors come back as the errno the kernel would be given.
//!
//! What it leaves out: the kernel's caches (every walk looks every name up afresh, as with
//! `--cache never`), permission checks (callers are root, as in the mount tests), and
//! `forget` (nodes the harness looked up stay known to the view until it is dropped).

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use scopefs::overlay::{Overlay, Upper, UpperLimits};
use scopefs::path::Name;
use scopefs::policy::{Policy, WriteMode};
use scopefs::sys::FileType;
use scopefs::sys::write::SetTime;
use scopefs::view::{Caller, Entry, FsError, Lookup, ROOT, SetAttr, View, Writes};
use scopefs::write::Direct;

/// Root, as the mount tests run.
pub const ROOT_CALLER: Caller = Caller {
    uid: 0,
    gid: 0,
    pid: 0,
    op: "harness",
};
/// The umask the harness creates with, as a shell's.
pub const UMASK: u32 = 0o022;
/// How many symlinks one walk follows before `ELOOP`, as Linux.
const MAX_LINKS: usize = 40;

/// The errno of a view failure, as the kernel would pass it on.
pub fn errno(err: FsError) -> io::Error {
    io::Error::from_raw_os_error(err.errno())
}

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// Where a path leads: its parent directory's node and canonical path, its last name (none for
/// the root) and the entry there, if any.
pub struct Walked {
    pub parent: u64,
    pub dir: Vec<Vec<u8>>,
    pub name: Option<Name>,
    pub entry: Option<Entry>,
}

impl Walked {
    /// The canonical path, one component per element.
    fn path(&self) -> Vec<Vec<u8>> {
        let mut path = self.dir.clone();
        path.extend(self.name.iter().map(|n| n.as_bytes().to_vec()));
        path
    }

    fn existing(&self) -> io::Result<Entry> {
        self.entry.ok_or_else(|| os(libc::ENOENT))
    }

    fn new_name(&self) -> io::Result<&Name> {
        match (&self.name, &self.entry) {
            (Some(name), None) => Ok(name),
            _ => Err(os(libc::EEXIST)),
        }
    }
}

/// A view of a SOURCE, driven without the kernel.
pub struct Harness {
    pub view: View,
}

impl Harness {
    /// A view of `source` under the policy `text` (a policy file's content). In overlay mode
    /// `overlay` is the overlay directory, opened (and locked) as a mount would.
    pub fn new(source: &Path, text: &str, overlay: Option<&Path>) -> Harness {
        let policy = Policy::parse(text, None).unwrap_or_else(|e| panic!("policy: {e}"));
        let matcher = Arc::new(policy.compile().unwrap_or_else(|e| panic!("policy: {e}")));
        let writes = match policy.write_mode() {
            WriteMode::Deny => Writes::Deny,
            WriteMode::Direct => Writes::Layer(Box::new(Direct)),
            WriteMode::Overlay => {
                let dir = overlay.expect("an overlay directory for overlay mode");
                let overlay = Overlay::open_for_mount(dir, source).expect("open the overlay");
                let limits = policy.limits();
                let limits = UpperLimits {
                    bytes: limits.overlay_bytes,
                    files: limits.overlay_files,
                };
                let upper = Upper::new(overlay, limits).expect("index the overlay");
                Writes::Layer(Box::new(upper))
            }
        };
        let view = View::new(source, matcher, writes).expect("open SOURCE");
        Harness { view }
    }

    /// Walks `path` (relative to the view's root) as path resolution does: `.` and `..` by
    /// name, symlinks on the way followed, the last one too with `follow`.
    pub fn walk(&self, path: &str, follow: bool) -> io::Result<Walked> {
        let mut queue: VecDeque<Vec<u8>> = components(path.as_bytes());
        let mut stack: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut links = 0;
        if queue.is_empty() {
            let entry = self.entry(ROOT)?;
            return Ok(Walked {
                parent: ROOT,
                dir: Vec::new(),
                name: None,
                entry: Some(entry),
            });
        }
        while let Some(part) = queue.pop_front() {
            if part == b"." {
                continue;
            }
            if part == b".." {
                stack.pop();
                continue;
            }
            let last = queue.is_empty();
            let dir = stack.last().map_or(ROOT, |(ino, _)| *ino);
            let name = Name::new(&part).map_err(|_| os(libc::ENAMETOOLONG))?;
            let found = match self.view.lookup(dir, &name) {
                Ok(Lookup::Found(entry)) => Some(entry),
                Ok(Lookup::Absent { .. }) => None,
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(errno(e)),
            };
            let Some(entry) = found else {
                if !last {
                    return Err(os(libc::ENOENT));
                }
                return Ok(Walked {
                    parent: dir,
                    dir: stack.iter().map(|(_, n)| n.clone()).collect(),
                    name: Some(name),
                    entry: None,
                });
            };
            if entry.attr.kind == FileType::Symlink && (!last || follow) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(os(libc::ELOOP));
                }
                let target = self.view.readlink(entry.ino).map_err(errno)?;
                if target.first() == Some(&b'/') {
                    // The kernel would resolve it in the agent's namespace, outside the view.
                    return Err(io::Error::other(
                        "an absolute symlink leads out of the view",
                    ));
                }
                for part in components(&target).into_iter().rev() {
                    queue.push_front(part);
                }
                continue;
            }
            if !last {
                if entry.attr.kind != FileType::Dir {
                    return Err(os(libc::ENOTDIR));
                }
                stack.push((entry.ino, part));
                continue;
            }
            return Ok(Walked {
                parent: dir,
                dir: stack.iter().map(|(_, n)| n.clone()).collect(),
                name: Some(name),
                entry: Some(entry),
            });
        }
        // The path ended in `.` or `..`: the directory reached.
        let (ino, name) = stack.pop().unwrap_or((ROOT, Vec::new()));
        if ino == ROOT {
            return self.walk("", follow);
        }
        let parent = stack.last().map_or(ROOT, |(ino, _)| *ino);
        Ok(Walked {
            parent,
            dir: stack.iter().map(|(_, n)| n.clone()).collect(),
            name: Name::new(&name).ok(),
            entry: Some(self.entry(ino)?),
        })
    }

    /// The entry of a node already known, as `getattr` gives it.
    fn entry(&self, ino: u64) -> io::Result<Entry> {
        let attr = self.view.getattr(ino, None).map_err(errno)?;
        Ok(Entry {
            ino,
            attr: attr.attr,
            ttl: attr.ttl,
            generation: 0,
        })
    }

    /// `open(2)` of node `ino`: its handle, or 0 where the view has the kernel skip opens (a
    /// read-only view), as the kernel then passes.
    fn open(&self, ino: u64, flags: i32) -> io::Result<u64> {
        // A view mounted read-only: the kernel refuses opens for writing itself.
        if flags & libc::O_ACCMODE != libc::O_RDONLY && self.view.read_only_mount() {
            return Err(os(libc::EROFS));
        }
        match self.view.open(ino, flags, ROOT_CALLER) {
            Ok(opened) => Ok(opened.fh),
            Err(FsError::NoOpen) => Ok(0),
            Err(e) => Err(errno(e)),
        }
    }

    fn release(&self, fh: u64) {
        if fh != 0 {
            self.view.release(fh);
        }
    }

    /// `open(path, O_WRONLY | O_CREAT | O_TRUNC)` and a write of `data` from the start, as
    /// `File::create` and `write_all` do. Without atomic truncation at open, the kernel opens
    /// the file and then sets its size to 0.
    pub fn create(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let walked = self.walk(path, true)?;
        let fh = match walked.entry {
            Some(e) if e.attr.kind == FileType::Dir => return Err(os(libc::EISDIR)),
            Some(e) => {
                let fh = self.open(e.ino, libc::O_WRONLY)?;
                let trunc = SetAttr {
                    size: Some(0),
                    mtime: Some(SetTime::Now),
                    ..SetAttr::default()
                };
                let truncated = self.view.setattr(e.ino, trunc, None, ROOT_CALLER);
                if let Err(err) = truncated {
                    self.release(fh);
                    return Err(errno(err));
                }
                fh
            }
            None => {
                let name = walked.name.as_ref().ok_or_else(|| os(libc::EISDIR))?;
                let mode = libc::S_IFREG | (0o666 & !UMASK);
                let made = self
                    .view
                    .create(walked.parent, name, mode, UMASK, ROOT_CALLER);
                made.map_err(errno)?.1
            }
        };
        let written = self.write_all(fh, 0, data);
        self.release(fh);
        written
    }

    fn write_all(&self, fh: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            let rest = &data[done..];
            let n = self
                .view
                .write(fh, offset + done as u64, rest, ROOT_CALLER)
                .map_err(errno)?;
            done += n as usize;
        }
        Ok(())
    }

    /// `open(path, O_WRONLY)` and a write of `data` at `offset`.
    pub fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let entry = self.walk(path, true)?.existing()?;
        if entry.attr.kind == FileType::Dir {
            return Err(os(libc::EISDIR));
        }
        let fh = self.open(entry.ino, libc::O_WRONLY)?;
        let written = self.write_all(fh, offset, data);
        self.release(fh);
        written
    }

    /// `truncate(2)`.
    pub fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let entry = self.walk(path, true)?.existing()?;
        match entry.attr.kind {
            FileType::Dir => return Err(os(libc::EISDIR)),
            FileType::File => {}
            _ => return Err(os(libc::EINVAL)),
        }
        let set = SetAttr {
            size: Some(len),
            ..SetAttr::default()
        };
        self.view
            .setattr(entry.ino, set, None, ROOT_CALLER)
            .map_err(errno)?;
        Ok(())
    }

    /// `chmod(2)` (it follows a symlink).
    pub fn chmod(&self, path: &str, mode: u32) -> io::Result<()> {
        let entry = self.walk(path, true)?.existing()?;
        let set = SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        };
        self.view
            .setattr(entry.ino, set, None, ROOT_CALLER)
            .map_err(errno)?;
        Ok(())
    }

    /// `mkdir(2)` with `mode`, under [`UMASK`].
    pub fn mkdir(&self, path: &str, mode: u32) -> io::Result<()> {
        let walked = self.walk(path, false)?;
        let name = walked.new_name()?;
        let made = self
            .view
            .mkdir(walked.parent, name, mode & !UMASK, UMASK, ROOT_CALLER);
        made.map(|_| ()).map_err(errno)
    }

    /// `symlink(2)`.
    pub fn symlink(&self, target: &[u8], path: &str) -> io::Result<()> {
        let walked = self.walk(path, false)?;
        let name = walked.new_name()?;
        let made = self.view.symlink(walked.parent, name, target, ROOT_CALLER);
        made.map(|_| ()).map_err(errno)
    }

    /// `unlink(2)`.
    pub fn unlink(&self, path: &str) -> io::Result<()> {
        let walked = self.walk(path, false)?;
        let entry = walked.existing()?;
        let name = walked.name.as_ref().ok_or_else(|| os(libc::EISDIR))?;
        if entry.attr.kind == FileType::Dir {
            return Err(os(libc::EISDIR));
        }
        self.view
            .remove(walked.parent, name, false, ROOT_CALLER)
            .map_err(errno)
    }

    /// `rmdir(2)`.
    pub fn rmdir(&self, path: &str) -> io::Result<()> {
        let walked = self.walk(path, false)?;
        let entry = walked.existing()?;
        let name = walked.name.as_ref().ok_or_else(|| os(libc::EBUSY))?;
        if entry.attr.kind != FileType::Dir {
            return Err(os(libc::ENOTDIR));
        }
        self.view
            .remove(walked.parent, name, true, ROOT_CALLER)
            .map_err(errno)
    }

    /// `rename(2)`, with the checks the kernel makes before it asks the file system: a
    /// directory cannot move beneath itself (`EINVAL`) nor onto one of its ancestors
    /// (`ENOTEMPTY`); a rename onto the same file does nothing; a directory only replaces a
    /// directory (`ENOTDIR`) and a non-directory only a non-directory (`EISDIR`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        // Both parents are walked before either last name is looked at.
        let old = self.walk(from, false)?;
        let new = self.walk(to, false)?;
        let src = old.existing()?;
        let (Some(old_name), Some(new_name)) = (&old.name, &new.name) else {
            return Err(os(libc::EBUSY));
        };
        let (old_path, new_path) = (old.path(), new.path());
        if new_path.len() > old_path.len() && new_path.starts_with(&old_path) {
            return Err(os(libc::EINVAL));
        }
        if let Some(dst) = new.entry {
            if old_path.len() > new_path.len() && old_path.starts_with(&new_path) {
                return Err(os(libc::ENOTEMPTY));
            }
            if dst.ino == src.ino {
                return Ok(());
            }
            let (src_dir, dst_dir) = (
                src.attr.kind == FileType::Dir,
                dst.attr.kind == FileType::Dir,
            );
            if src_dir && !dst_dir {
                return Err(os(libc::ENOTDIR));
            }
            if !src_dir && dst_dir {
                return Err(os(libc::EISDIR));
            }
        }
        self.view
            .rename(old.parent, old_name, new.parent, new_name, 0, ROOT_CALLER)
            .map_err(errno)
    }

    /// `lstat(2)`: the entry at `path`, not following a last symlink.
    pub fn lstat(&self, path: &str) -> io::Result<Entry> {
        self.walk(path, false)?.existing()
    }

    /// The whole content of the file at `path`, read through an open handle.
    pub fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let entry = self.walk(path, true)?.existing()?;
        if entry.attr.kind == FileType::Dir {
            return Err(os(libc::EISDIR));
        }
        let fh = self.open(entry.ino, libc::O_RDONLY)?;
        let mut out = Vec::new();
        let result = loop {
            match self.view.read(entry.ino, fh, out.len() as u64, 64 * 1024) {
                Ok(chunk) if chunk.is_empty() => break Ok(out),
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) => break Err(errno(e)),
            }
        };
        self.release(fh);
        result
    }

    /// `readlink(2)`.
    pub fn readlink(&self, path: &str) -> io::Result<Vec<u8>> {
        let entry = self.lstat(path)?;
        self.view.readlink(entry.ino).map_err(errno)
    }

    /// The names in the directory at `path`, as `readdir` lists them (without `.` and `..`),
    /// sorted.
    pub fn readdir(&self, path: &str) -> io::Result<Vec<String>> {
        let entry = self.walk(path, true)?.existing()?;
        let fh = match self.view.opendir(entry.ino, ROOT_CALLER) {
            Ok(opened) => opened.fh,
            Err(FsError::NoOpen) => 0,
            Err(e) => return Err(errno(e)),
        };
        let mut names = Vec::new();
        let listed = self.view.readdir(entry.ino, fh, 0, |listed| {
            if listed.node.is_none() {
                names.push(listed.name.to_string_lossy().into_owned());
            }
            false
        });
        if fh != 0 {
            self.view.releasedir(fh);
        }
        listed.map_err(errno)?;
        names.sort();
        Ok(names)
    }

    /// What the view shows of one entry, in the words of the mount tests' `describe`: type,
    /// permission bits, content or target.
    pub fn describe(&self, path: &str) -> io::Result<String> {
        let entry = self.lstat(path)?;
        let mode = entry.attr.perm & 0o7777;
        Ok(match entry.attr.kind {
            FileType::Dir => format!("dir {mode:o}"),
            FileType::File => {
                let data = self.read(path)?;
                format!("file {mode:o} {:?}", String::from_utf8_lossy(&data))
            }
            FileType::Symlink => {
                let target = PathBuf::from(OsStr::from_bytes(&self.readlink(path)?));
                format!("symlink -> {target:?}")
            }
            FileType::Fifo => format!("fifo {mode:o}"),
            _ => format!("other {mode:o}"),
        })
    }

    /// Every entry of the view, as [`Harness::describe`] shows it, keyed by path.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.snapshot_into("", &mut out);
        out
    }

    fn snapshot_into(&self, dir: &str, out: &mut BTreeMap<String, String>) {
        let names = self
            .readdir(dir)
            .unwrap_or_else(|e| panic!("readdir {dir:?}: {e}"));
        for name in names {
            let path = join(dir, &name);
            let desc = self
                .describe(&path)
                .unwrap_or_else(|e| panic!("describe {path:?}: {e}"));
            let is_dir = desc.starts_with("dir ");
            out.insert(path.clone(), desc);
            if is_dir {
                self.snapshot_into(&path, out);
            }
        }
    }

    /// Removes the tree at `path` as `std::fs::remove_dir_all` does: entries first, then the
    /// directory (a symlink is removed, never followed).
    pub fn remove_tree(&self, path: &str) -> io::Result<()> {
        let entry = self.lstat(path)?;
        if entry.attr.kind != FileType::Dir {
            return self.unlink(path);
        }
        for name in self.readdir(path)? {
            self.remove_tree(&join(path, &name))?;
        }
        self.rmdir(path)
    }

    /// Copies the tree at `from` to `to` as `cp -a` would, through the view's own calls:
    /// directories and files keep their permission bits, symlinks their targets.
    pub fn copy_tree(&self, from: &str, to: &str) -> io::Result<()> {
        let entry = self.lstat(from)?;
        let mode = entry.attr.perm & 0o7777;
        match entry.attr.kind {
            FileType::Symlink => self.symlink(&self.readlink(from)?, to),
            FileType::Dir => {
                self.mkdir(to, 0o777)?;
                for name in self.readdir(from)? {
                    self.copy_tree(&join(from, &name), &join(to, &name))?;
                }
                self.chmod(to, mode)
            }
            _ => {
                self.create(to, &self.read(from)?)?;
                self.chmod(to, mode)
            }
        }
    }
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}
