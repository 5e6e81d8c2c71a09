//! A tiny FUSE file system for the tests: a read-only mirror of a directory whose lookups
//! match names as vfat, exFAT, NTFS and SMB shares do, ignoring case and trailing dots, so that
//! `KEYS/SERVER.PEM.` finds `keys/server.pem`. Listings show the entries' own names. It runs in
//! the test process, mounted with `fuser` like scopefs itself.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    Request,
};

/// Nothing is cached by the kernel: every lookup comes here.
const TTL: Duration = Duration::ZERO;

/// How a name is compared: trailing dots dropped, ASCII case folded.
fn fold(name: &[u8]) -> Vec<u8> {
    let mut end = name.len();
    while end > 0 && name.get(end - 1) == Some(&b'.') {
        end -= 1;
    }
    name.get(..end).unwrap_or_default().to_ascii_lowercase()
}

/// The mirror of `root`.
pub struct NormFs {
    root: PathBuf,
    nodes: Mutex<HashMap<u64, PathBuf>>,
}

/// A mounted [`NormFs`]; unmounted when dropped.
pub struct Mounted {
    _session: BackgroundSession,
}

/// Mounts a mirror of `backing` at `mountpoint`.
pub fn mount(backing: &Path, mountpoint: &Path) -> Mounted {
    let fs = NormFs {
        root: backing.to_path_buf(),
        nodes: Mutex::new(HashMap::from([(1, backing.to_path_buf())])),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("normfs".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount(fs, mountpoint, &config).unwrap_or_else(|e| {
        panic!(
            "mount the test file system at {}: {e}",
            mountpoint.display()
        )
    });
    Mounted { _session: session }
}

fn kind(meta: &fs::Metadata) -> FileType {
    if meta.is_dir() {
        FileType::Directory
    } else if meta.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

fn attr(meta: &fs::Metadata) -> FileAttr {
    let time = |s: i64| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64);
    FileAttr {
        ino: INodeNo(meta.ino()),
        size: meta.size(),
        blocks: meta.blocks(),
        atime: time(meta.atime()),
        mtime: time(meta.mtime()),
        ctime: time(meta.ctime()),
        crtime: UNIX_EPOCH,
        kind: kind(meta),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl NormFs {
    fn path(&self, ino: INodeNo) -> Option<PathBuf> {
        if ino.0 == 1 {
            return Some(self.root.clone());
        }
        self.nodes.lock().unwrap().get(&ino.0).cloned()
    }

    /// The entry of `dir` whose name folds like `name`.
    fn find(dir: &Path, name: &OsStr) -> io::Result<PathBuf> {
        let want = fold(name.as_bytes());
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if fold(entry.file_name().as_bytes()) == want {
                return Ok(entry.path());
            }
        }
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
}

impl Filesystem for NormFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.path(parent) else {
            return reply.error(Errno::ENOENT);
        };
        match Self::find(&dir, name).and_then(|p| Ok((fs::symlink_metadata(&p)?, p))) {
            Ok((meta, path)) => {
                self.nodes.lock().unwrap().insert(meta.ino(), path);
                reply.entry(&TTL, &attr(&meta), Generation(0));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                let mut a = attr(&meta);
                a.ino = ino;
                reply.attr(&TTL, &a);
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.path(ino).map(fs::read_link) {
            Some(Ok(target)) => reply.data(target.as_os_str().as_bytes()),
            Some(Err(e)) => reply.error(errno(&e)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let mut buf = vec![0; size as usize];
        match fs::File::open(&path).and_then(|f| f.read_at(&mut buf, offset)) {
            Ok(n) => reply.data(buf.get(..n).unwrap_or_default()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(dir) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, OsStr::new(".").to_os_string()),
            (ino.0, FileType::Directory, OsStr::new("..").to_os_string()),
        ];
        let listed = match fs::read_dir(&dir) {
            Ok(listed) => listed,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut children: Vec<_> = listed.filter_map(Result::ok).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let Ok(meta) = child.metadata() else { continue };
            self.nodes.lock().unwrap().insert(meta.ino(), child.path());
            entries.push((meta.ino(), kind(&meta), child.file_name()));
        }
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
