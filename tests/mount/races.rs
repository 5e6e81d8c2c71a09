//! The host changes SOURCE while the agent works through the view (SPEC §5: every operation
//! acts on the very inode it checked). `.env` holds a secret and is hardlinked at
//! `private/stash` (hidden); the host swaps a public file with `private/stash` in a tight loop
//! with `renameat2(RENAME_EXCHANGE)`, so half the time the public name leads to the secret's
//! inode. A check that sees the public file and an open (or copy-up, or xattr read) that
//! resolves the name again would hand out the secret.
//!
//! Each race is bounded in reads and in time; `SCOPEFS_RACE_READS` and `SCOPEFS_RACE_SECS`
//! raise the bounds for a long run (e.g. `SCOPEFS_RACE_READS=200000 SCOPEFS_RACE_SECS=600
//! cargo test --test mount races -- --test-threads 1`).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::*;

/// What `.env` holds; no read through the view may ever return it.
const SECRET: &[u8] = b"API_KEY=race-secret-0451\n";
/// The `user.tag` attribute of `.env`.
const SECRET_TAG: &[u8] = b"secret-tag-0451";
/// What the public file holds.
const NOTES: &[u8] = b"public notes\n";

/// How many reads a race runs and for how long at most.
struct Budget {
    reads: u64,
    time: Duration,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn budget() -> Budget {
    Budget {
        reads: env_u64("SCOPEFS_RACE_READS", 20_000),
        time: Duration::from_secs(env_u64("SCOPEFS_RACE_SECS", 20)),
    }
}

/// `renameat2(a, b, RENAME_EXCHANGE)`.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (ca, cb) = (cpath(a), cpath(b));
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Swaps pairs of SOURCE paths on a thread of its own until stopped: the pair `current`
/// points at, so a test can move the attack from file to file.
struct Swapper {
    stop: Arc<AtomicBool>,
    current: Arc<AtomicUsize>,
    handle: Option<JoinHandle<u64>>,
}

impl Swapper {
    fn start(pairs: Vec<(PathBuf, PathBuf)>) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicUsize::new(0));
        let (stop2, current2) = (stop.clone(), current.clone());
        let handle = thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let Some((a, b)) = pairs.get(current2.load(Ordering::Relaxed)) else {
                    break;
                };
                exchange(a, b).expect("RENAME_EXCHANGE in SOURCE");
                swaps += 1;
            }
            swaps
        });
        Swapper {
            stop,
            current,
            handle: Some(handle),
        }
    }

    /// Stops swapping; the number of swaps made.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().expect("swapper thread"))
            .unwrap_or(0)
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `.env` (the secret, with a `user.tag`), its hardlink `private/stash`, and the public
/// `docs/notes.txt` (with a `user.tag` of its own).
fn race_scene() -> Scene {
    let s = Scene::new();
    s.file_with(".env", SECRET);
    lsetxattr(&s.s(".env"), b"user.tag", SECRET_TAG).expect("user.tag on .env");
    s.dir("private");
    fs::hard_link(s.s(".env"), s.s("private/stash")).expect("hardlink private/stash");
    s.file_with("docs/notes.txt", NOTES);
    lsetxattr(&s.s("docs/notes.txt"), b"user.tag", b"notes-tag").expect("user.tag on notes");
    s
}

/// What a race saw.
#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    secret: u64,
    public: u64,
    refused: u64,
    xattr_reads: u64,
    xattr_secret: u64,
}

/// Reads `rel` through the mount (opened with `flags`) on two threads until the budget is
/// spent, reading `user.tag` every fourth time, and counts what came back.
fn hammer(mnt: &Path, rel: &str, flags: libc::c_int, budget: &Budget) -> Tally {
    let path = mnt.join(rel);
    let reads = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + budget.time;
    let workers: Vec<JoinHandle<Tally>> = (0..2)
        .map(|_| {
            let (path, reads, limit) = (path.clone(), reads.clone(), budget.reads);
            thread::spawn(move || {
                let mut t = Tally::default();
                let mut buf = Vec::new();
                while reads.fetch_add(1, Ordering::Relaxed) < limit && Instant::now() < deadline {
                    t.reads += 1;
                    buf.clear();
                    match open_raw(&path, flags).and_then(|mut f| f.read_to_end(&mut buf)) {
                        Ok(_) if buf == NOTES => t.public += 1,
                        Ok(_) if is_secret(&buf) => t.secret += 1,
                        Ok(_) => panic!("read {}: unexpected content {buf:?}", path.display()),
                        Err(_) => t.refused += 1,
                    }
                    if t.reads % 4 == 0 {
                        t.xattr_reads += 1;
                        if getxattr(&path, b"user.tag").is_ok_and(|v| v == SECRET_TAG) {
                            t.xattr_secret += 1;
                        }
                    }
                }
                t
            })
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        let t = w.join().expect("reader thread");
        total.reads += t.reads;
        total.secret += t.secret;
        total.public += t.public;
        total.refused += t.refused;
        total.xattr_reads += t.xattr_reads;
        total.xattr_secret += t.xattr_secret;
    }
    total
}

/// Whether `data` is the secret, or part of it: a read sized by the public file's cached
/// length gets only the secret's first bytes.
fn is_secret(data: &[u8]) -> bool {
    !data.is_empty() && (contains(data, SECRET) || SECRET.starts_with(data))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Mounts the race scene with `--hide private/` and `args` (in which `BASE` stands for the
/// scene's own directory), races reads of `docs/notes.txt` (opened with `flags`) against the
/// swapper, and asserts the secret never came back.
fn read_race(args: &[&str], flags: libc::c_int, mode: &str) {
    let s = race_scene();
    let base = s.base();
    let mut all = vec!["--hide".to_string(), "private/".to_string()];
    all.extend(
        args.iter()
            .map(|a| a.replace("BASE", base.to_str().unwrap())),
    );
    let _m = s.mount(&all.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(fs::read(s.m("docs/notes.txt")).unwrap(), NOTES);
    let b = budget();
    let swapper = Swapper::start(vec![(s.s("docs/notes.txt"), s.s("private/stash"))]);
    let t = hammer(&s.mnt, "docs/notes.txt", flags, &b);
    let swaps = swapper.finish();
    eprintln!("{mode}: {t:?}, {swaps} swaps in SOURCE");
    assert_eq!(
        (t.secret, t.xattr_secret),
        (0, 0),
        "{mode}: reads of docs/notes.txt returned the hidden .env's content or user.tag: {t:?}"
    );
    assert!(swaps > 0, "{mode}: the host never swapped the files");
    assert!(
        t.public > 0,
        "{mode}: no read returned the public file, so the race was not run: {t:?}"
    );
    // Once the host stops, the public file is served again whichever way round it stopped.
    if fs::read(s.s("docs/notes.txt")).unwrap() != NOTES {
        exchange(&s.s("docs/notes.txt"), &s.s("private/stash")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::read(s.m("docs/notes.txt")) {
            Ok(data) if data == NOTES => break,
            other if Instant::now() >= deadline => {
                panic!("{mode}: docs/notes.txt after the race: {other:?}")
            }
            Ok(data) => assert!(!is_secret(&data), "{mode}: secret after the race"),
            Err(_) => {}
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn open_race_with_passthrough_never_reads_the_hidden_file() {
    read_race(
        &["--audit-log", "BASE/audit.jsonl"],
        libc::O_RDONLY,
        "deny --audit-log (passthrough)",
    );
}

#[test]
fn open_race_without_cache_never_reads_the_hidden_file() {
    read_race(&["--cache", "never"], libc::O_RDONLY, "--cache never");
}

#[test]
fn open_race_in_the_default_read_only_view_never_reads_the_hidden_file() {
    read_race(&[], libc::O_RDONLY, "default read-only");
}

#[test]
fn open_race_in_an_overlay_view_never_reads_the_hidden_file() {
    read_race(&["--overlay", "BASE/overlay"], libc::O_RDONLY, "overlay");
}

#[test]
fn write_open_race_in_a_direct_view_never_reaches_the_hidden_file() {
    // A read-write open must not hand out the hidden inode either (reading through it would
    // show the secret, writing would change it).
    read_race(&["--writes", "direct"], libc::O_RDWR, "direct, O_RDWR");
}

/// Copies up `files` public files, each while the host swaps it with a hardlink of `.env`,
/// and checks that no copy in `upper/` holds the secret or its attribute.
#[test]
fn copy_up_race_never_copies_the_hidden_file_into_the_overlay() {
    let files = env_u64("SCOPEFS_RACE_COPIES", 100) as usize;
    let s = Scene::new();
    s.file_with(".env", SECRET);
    lsetxattr(&s.s(".env"), b"user.tag", SECRET_TAG).unwrap();
    s.dir("private");
    s.dir("docs");
    let mut pairs = Vec::new();
    for i in 0..files {
        let public = s.file_with(format!("docs/f{i}.txt"), NOTES);
        let stash = s.s(format!("private/s{i}"));
        fs::hard_link(s.s(".env"), &stash).unwrap();
        pairs.push((public, stash));
    }
    let overlay = s.base().join("overlay");
    let _m = s.mount(&["--hide", "private/", "--overlay", overlay.to_str().unwrap()]);
    let deadline = Instant::now() + budget().time;
    let swapper = Swapper::start(pairs);
    let current = swapper.current.clone();
    let mut attempts = 0u64;
    for i in 0..files {
        current.store(i, Ordering::Relaxed);
        let view = s.m(format!("docs/f{i}.txt"));
        // Opening for writing copies the file up; while the host has the secret's inode at
        // this name, the open is refused (ENOENT) and tried again.
        loop {
            attempts += 1;
            match open_raw(&view, libc::O_WRONLY | libc::O_APPEND) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => panic!("open docs/f{i}.txt for writing: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "docs/f{i}.txt could not be opened for writing within the time budget"
            );
        }
    }
    let swaps = swapper.finish();
    eprintln!("copy-up: {files} files, {attempts} opens, {swaps} swaps in SOURCE");
    let mut leaked = Vec::new();
    for i in 0..files {
        let copy = overlay.join(format!("upper/docs/f{i}.txt"));
        let data = fs::read(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        let tag = lgetxattr(&copy, b"user.tag").unwrap_or_default();
        if is_secret(&data) || tag == SECRET_TAG {
            leaked.push(i);
        } else {
            assert_eq!(data, NOTES, "{}", copy.display());
        }
    }
    assert!(
        leaked.is_empty(),
        "copy-up wrote the hidden .env into upper/ for {} of {files} files: {leaked:?}",
        leaked.len()
    );
}

/// The kernel reads a passed-through file from the backing file the daemon named at the
/// first open of the node; a later open, checked against another file at the same name, must
/// not be served from that earlier file.
#[test]
fn passthrough_backing_belongs_to_the_checked_file() {
    let s = Scene::new();
    s.file_with("docs/notes.txt", NOTES);
    s.dir("private");
    let log = s.base().join("audit.jsonl");
    let _m = s.mount(&["--hide", "private/", "--audit-log", log.to_str().unwrap()]);
    // The agent keeps the public file open (its node now has a backing file)...
    let mut held = fs::File::open(s.m("docs/notes.txt")).unwrap();
    let mut first = Vec::new();
    held.read_to_end(&mut first).unwrap();
    assert_eq!(first, NOTES);
    // ...while the host moves it out of the view, puts a secret into it, and puts a new
    // public file at its name.
    fs::rename(s.s("docs/notes.txt"), s.s("private/moved")).unwrap();
    fs::write(s.s("private/moved"), SECRET).unwrap();
    fs::write(s.s("docs/notes.txt"), b"new public notes\n").unwrap();
    // The first fresh open already reads the new file: the kernel is told to look the name
    // up again (ESTALE on the open of the old node) and opens what it leads to now.
    assert_eq!(
        fs::read(s.m("docs/notes.txt")).unwrap(),
        b"new public notes\n"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = fs::read(s.m("docs/notes.txt"));
        if let Ok(data) = &now {
            assert!(
                !is_secret(data),
                "a fresh open of docs/notes.txt read the file now hidden at private/moved"
            );
        }
        match now {
            Ok(data) if data == b"new public notes\n" => break,
            other if Instant::now() >= deadline => {
                panic!("docs/notes.txt never showed the new file: {other:?}")
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
    drop(held);
}

/// In a direct view a hardlink made through the view names the file that was checked: never
/// the hidden file the host swapped in at the same name a moment later. Each link made is
/// looked at in SOURCE and removed again, so the public file has one name when the next
/// attempt checks it. (A link made may be answered with ENOENT: the view hides a multi-link
/// file while the host keeps changing its names; what counts is what SOURCE holds.)
#[test]
fn link_race_in_a_direct_view_never_names_the_hidden_file() {
    use std::os::unix::fs::MetadataExt;
    let attempts = env_u64("SCOPEFS_RACE_LINKS", 5_000);
    let s = race_scene();
    let _m = s.mount(&["--hide", "private/", "--writes", "direct"]);
    let secret_ino = fs::metadata(s.s(".env")).unwrap().ino();
    let deadline = Instant::now() + budget().time;
    let swapper = Swapper::start(vec![(s.s("docs/notes.txt"), s.s("private/stash"))]);
    let (mut tried, mut made, mut wrong) = (0, 0, 0);
    while tried < attempts && Instant::now() < deadline {
        tried += 1;
        match fs::hard_link(s.m("docs/notes.txt"), s.m("docs/link")) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => panic!("link docs/notes.txt docs/link: {e}"),
        }
        if let Ok(meta) = fs::metadata(s.s("docs/link")) {
            made += 1;
            if meta.ino() == secret_ino {
                wrong += 1;
            }
            fs::remove_file(s.s("docs/link")).unwrap();
        }
    }
    let swaps = swapper.finish();
    eprintln!("direct link: {tried} attempts, {made} links made, {swaps} swaps in SOURCE");
    assert!(made > 0, "no link was made: the race was not run");
    assert_eq!(
        wrong, 0,
        "{wrong} of {made} links made through the view name the hidden .env"
    );
}
