//! Open files: `open`, `read` (through a handle, or of a node the kernel opened without the
//! daemon), `release`, and the descriptors passthrough hands to the kernel. Writes through a
//! handle are the write path's (`write.rs`).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Caller, FsError, FsResult, Handle, Layer, Opened, View};
use crate::sys::{self, FileType};

/// Open flags that ask for write access of some kind.
const WRITE_FLAGS: i32 =
    libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT;

/// A file read without an open handle stays open: its node, (device, inode) and the file.
pub(super) type KeptRead = (u64, (u64, u64), Arc<File>);

/// How many files read without an open handle stay open for the next read.
const READ_FILES: usize = 8;

impl View {
    /// `open` of a regular file. Write access copies the file up first in overlay mode and is
    /// refused in a read-only view.
    pub fn open(&self, ino: u64, flags: i32, caller: Caller) -> FsResult<Opened> {
        if self.skips_opens() {
            return Err(FsError::NoOpen);
        }
        let file = if flags & WRITE_FLAGS != 0 {
            self.versions.lock().remove(&ino);
            self.open_for_write(ino)?
        } else {
            let (path, located) = self.node(ino)?;
            if located.stat.kind != FileType::File {
                return Err(FsError::Access);
            }
            // The file checked, through its own descriptor: its name may lead elsewhere by now.
            let root = self.layer_root(located.layer);
            let file = sys::reopen_regular(root, &path, located.fd.as_fd(), &located.stat, false)
                .map_err(FsError::resolving)?;
            self.read_of(&caller, &path);
            let keep_cache = self.keep_cache(ino, &located.stat);
            let fh = self.add_handle(Handle {
                file,
                node: ino,
                counted: located.layer == Layer::Upper,
                path: None,
            });
            let file = Some((located.stat.dev, located.stat.ino));
            return Ok(Opened {
                fh,
                keep_cache,
                cache_listing: false,
                file,
            });
        };
        Ok(Opened {
            fh: self.add_handle(file),
            keep_cache: false,
            cache_listing: false,
            file: None,
        })
    }

    pub(super) fn add_handle(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().insert(fh, Arc::new(handle));
        fh
    }

    /// A new descriptor of the file open as handle `fh`, for the kernel to read it directly.
    pub fn handle_fd(&self, fh: u64) -> FsResult<OwnedFd> {
        Ok(self.handle(fh)?.file.as_fd().try_clone_to_owned()?)
    }

    pub(super) fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
        self.files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// `read` of node `ino` from its open file `fh`, or, where the kernel opens files
    /// without the daemon, of the node itself.
    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        if self.unopened(fh) {
            return self.read_node(ino, offset, size);
        }
        read_full(&self.handle(fh)?.file, offset, size)
    }

    /// `read` of node `ino` without an open handle (the kernel stopped sending `open`, which
    /// it does only for a read-only mount): the node is located, checked and opened afresh,
    /// so every read the kernel cannot answer from its cache is decided as an open would be.
    fn read_node(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let (path, located) = self.node(ino)?;
        if located.stat.kind != FileType::File {
            return Err(FsError::Access);
        }
        // The file the node's path holds now, checked as an open would be: reused when the
        // last read of this node opened that very file.
        let id = (located.stat.dev, located.stat.ino);
        let kept = self
            .reads
            .lock()
            .iter()
            .find(|(node, file, _)| *node == ino && *file == id)
            .map(|(_, _, file)| file.clone());
        let file = match kept {
            Some(file) => file,
            None => {
                let root = self.layer_root(located.layer);
                let file =
                    sys::reopen_regular(root, &path, located.fd.as_fd(), &located.stat, false)
                        .map_err(FsError::resolving)?;
                let file = Arc::new(file);
                let mut reads = self.reads.lock();
                reads.retain(|(node, _, _)| *node != ino);
                if reads.len() >= READ_FILES {
                    reads.remove(0);
                }
                reads.push((ino, id, file.clone()));
                file
            }
        };
        read_full(&file, offset, size)
    }

    /// `release` of an open file.
    pub fn release(&self, fh: u64) {
        self.files.lock().remove(&fh);
    }

    /// The kernel's node `ino` stands for a file its names no longer lead to (the kernel reads
    /// that file directly, on behalf of files still open): its names are dropped, so the next
    /// lookup of any of them makes a new node for the file it leads to now.
    pub fn retire(&self, ino: u64) {
        self.inodes.write().retire(ino);
    }
}

/// Up to `size` bytes of `file` from `offset`; fewer only at the end of the file.
fn read_full(file: &File, offset: u64, size: u32) -> FsResult<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        match file.read_at(rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(done);
    Ok(buf)
}
