//! File descriptors stay bounded (SPEC §5): a 100,000-file tree walked, stat'ed and read
//! through the mount never exhausts the daemon's descriptor limit.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 1000;
/// What the daemon holds once mounted: the standard streams, SOURCE's root, `/dev/fuse`, the
/// inotify instance, the signal handler's socket pair, `/proc/self/fd`: about ten
/// (docs/security.md).
const FDS_AT_START: usize = 12;
/// docs/security.md: "under 25": those, the last eight files read (kept for their next read) and
/// one or two for each request in hand.
const FDS_AT_PEAK: usize = 24;
/// Room the tree needs: a block and an inode per file and directory, with a margin.
const TREE_BYTES: u64 = 600 << 20;
const TREE_INODES: u64 = 110_000;

fn is_tmpfs(dir: &Path) -> bool {
    mountinfo()
        .iter()
        .any(|e| e.mount_point == dir && e.fstype == "tmpfs")
}

/// Free bytes and inodes of the file system holding `dir` (inodes `None` where it does not
/// count them).
fn room(dir: &Path) -> (u64, Option<u64>) {
    let st = statvfs(dir).unwrap_or_else(|e| panic!("statvfs {}: {e}", dir.display()));
    let bytes = st.f_bavail as u64 * st.f_frsize as u64;
    let inodes = (st.f_files != 0).then_some(st.f_favail as u64);
    (bytes, inodes)
}

fn has_room(dir: &Path) -> bool {
    let (bytes, inodes) = room(dir);
    bytes >= TREE_BYTES && inodes.is_none_or(|n| n >= TREE_INODES)
}

/// Where the tree goes: /dev/shm when it is a tmpfs with room for it (a second to build,
/// against close to a minute on ext4), else the temporary directory, which must have room.
/// Says which on stderr.
fn tree_place() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if is_tmpfs(shm) && has_room(shm) {
        eprintln!("building the 100,000-file tree on /dev/shm");
        return shm.to_path_buf();
    }
    let tmp = std::env::temp_dir();
    let why = if is_tmpfs(shm) {
        let (bytes, inodes) = room(shm);
        format!(
            "/dev/shm has {} MiB and {inodes:?} inodes free",
            bytes >> 20
        )
    } else {
        "/dev/shm is not a tmpfs".to_owned()
    };
    let (bytes, inodes) = room(&tmp);
    assert!(
        has_room(&tmp),
        "the 100,000-file tree needs {} MiB and {TREE_INODES} inodes; {why}, and {} has {} MiB and {inodes:?} inodes free: give /dev/shm more room (docker run --shm-size=1g) or point TMPDIR elsewhere",
        TREE_BYTES >> 20,
        tmp.display(),
        bytes >> 20
    );
    eprintln!(
        "building the 100,000-file tree in {} ({why})",
        tmp.display()
    );
    tmp
}

fn file_content(d: usize, f: usize) -> String {
    format!("{d}/{f}\n")
}

/// Builds DIRS × FILES_PER_DIR small files, one thread per core.
fn build_tree(src: &Path) {
    let workers = thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    thread::scope(|scope| {
        for w in 0..workers {
            scope.spawn(move || {
                for d in (w..DIRS).step_by(workers) {
                    let dir = src.join(format!("d{d:03}"));
                    fs::create_dir(&dir).unwrap();
                    for f in 0..FILES_PER_DIR {
                        fs::write(dir.join(format!("f{f:04}.txt")), file_content(d, f)).unwrap();
                    }
                }
            });
        }
    });
}

/// Walks the view: every directory listed, every file stat'ed; every 10th file also read and
/// checked. Returns (files, total bytes).
fn walk(mnt: &Path) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack: Vec<PathBuf> = vec![mnt.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in rd {
            let entry = entry.unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()));
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
            if meta.is_dir() {
                stack.push(path);
            } else {
                assert!(meta.is_file(), "{} is a regular file", path.display());
                files += 1;
                bytes += meta.size();
                if files % 10 == 0 {
                    let data =
                        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                    assert_eq!(data.len() as u64, meta.size(), "{}", path.display());
                }
            }
        }
    }
    (files, bytes)
}

#[test]
fn hundred_thousand_files_walk_with_bounded_descriptors() {
    let s = Scene::new_in(&tree_place());
    let t = Instant::now();
    build_tree(&s.src);
    let expected_bytes: u64 = (0..DIRS)
        .flat_map(|d| (0..FILES_PER_DIR).map(move |f| file_content(d, f).len() as u64))
        .sum();
    eprintln!("built {} files in {:?}", DIRS * FILES_PER_DIR, t.elapsed());

    let m = s.mount(&[]);
    let pid = m.pid;
    let at_start = fd_count(pid).expect("read /proc/PID/fd of the daemon");

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(at_start));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak, samples) = (stop.clone(), peak.clone(), samples.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = fd_count(pid) {
                    peak.fetch_max(n, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let t = Instant::now();
    // Two passes: the second runs with the kernel's caches full of the first pass's inodes.
    let first = walk(m.mnt());
    let second = walk(m.mnt());
    let elapsed = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let at_end = fd_count(pid).expect("daemon still alive after the walk");
    println!(
        "100k walk: {} files x2 in {elapsed:?}; daemon fds: start {at_start}, peak {peak}, \
         end {at_end}, {} samples",
        first.0,
        samples.load(Ordering::Relaxed)
    );
    eprintln!("daemon peak open fds during the 100k walk: {peak}");

    assert_eq!(
        first.0,
        DIRS * FILES_PER_DIR,
        "files seen through the mount"
    );
    assert_eq!(first.1, expected_bytes, "bytes seen through the mount");
    assert_eq!(second, first, "the second walk sees the same tree");
    assert!(
        samples.load(Ordering::Relaxed) > 0,
        "no fd sample was taken"
    );
    assert!(
        at_start <= FDS_AT_START,
        "the daemon started with {at_start} descriptors (docs/security.md: about ten, at most {FDS_AT_START})"
    );
    assert!(
        peak <= FDS_AT_PEAK,
        "the daemon held {peak} descriptors at peak (docs/security.md: under 25, at most {FDS_AT_PEAK})"
    );
    assert!(alive(pid), "daemon died during the walk");
}
