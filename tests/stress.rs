//! Stress through a real mount: concurrent namespace churn in an overlay view while others walk
//! and read it, and ten thousand files held open at once. They need root and /dev/fuse and fail
//! loudly without them.
//!
//! - `overlay_churn_with_readers`: writer threads create, write, rename, link and delete in
//!   their own directories, a shared one and SOURCE's files (copy-ups and whiteouts, racing on
//!   the same names), a `sh` process loops through its own files, and reader threads walk and
//!   read the whole view, for a bounded time. The daemon must stay alive, every worker must
//!   finish before a deadline, only the errors a race explains may occur, SOURCE must be
//!   unchanged, and the view after unmount and remount must equal the view just before.
//! - `ten_thousand_open_files`: 10,000 distinct files opened through the view and held, one byte
//!   read from each, then closed; the daemon's descriptors are counted from /proc/PID/fd.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long the workers churn.
const CHURN: Duration = Duration::from_secs(12);
/// How long after the churn every worker must have finished.
const GRACE: Duration = Duration::from_secs(30);
const WRITERS: usize = 4;
const READERS: usize = 2;
/// SOURCE's tree: `base/dD/fF.txt`, touched by the writers.
const BASE_DIRS: usize = 4;
const BASE_FILES: usize = 10;
/// SOURCE's `keep/` files, which no writer touches: readers check their contents every time.
const KEEP_FILES: usize = 20;

/// A small xorshift generator: the workers need variety, not quality, and a seed per worker
/// makes a failing run repeatable in what it tried.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What one worker did: operations tried, errors a race explains, and errors nothing explains.
#[derive(Debug, Default)]
struct Tally {
    ops: u64,
    raced: u64,
    unexplained: Vec<String>,
}

impl Tally {
    /// Counts `result`; an error whose errno is in `races` is a lost race, any other is a bug.
    fn check<T>(&mut self, what: &str, result: io::Result<T>, races: &[i32]) -> Option<T> {
        self.ops += 1;
        match result {
            Ok(v) => Some(v),
            Err(e) if e.raw_os_error().is_some_and(|n| races.contains(&n)) => {
                self.raced += 1;
                None
            }
            Err(e) => {
                if self.unexplained.len() < 20 {
                    self.unexplained.push(format!("{what}: {e}"));
                }
                None
            }
        }
    }
}

fn keep_content(i: usize) -> Vec<u8> {
    format!("kept file {i}\n").repeat(i + 1).into_bytes()
}

/// SOURCE for the churn: the writers' `base/` and the readers' untouched `keep/`.
fn seed_source(scene: &Scene) {
    for d in 0..BASE_DIRS {
        for f in 0..BASE_FILES {
            scene.file(format!("base/d{d}/f{f}.txt"));
        }
        scene.file(format!("base/d{d}/sub/inner.txt"));
    }
    for i in 0..KEEP_FILES {
        scene.file_with(format!("keep/k{i}.txt"), &keep_content(i));
    }
    scene.symlink("keep/link", "k0.txt");
}

/// One writer: `w{id}/` is its own, `shared/` everyone's, `base/` SOURCE's.
fn writer(mnt: PathBuf, id: usize, stop: Arc<AtomicBool>) -> Tally {
    use libc::{EEXIST, ENOENT, ENOTEMPTY, EXDEV};
    let mut t = Tally::default();
    let mut rng = Rng::new(id as u64 + 1);
    let own = mnt.join(format!("w{id}"));
    let shared = mnt.join("shared");
    t.check("mkdir own", fs::create_dir(&own), &[]);
    let mut serial = 0u64;
    let mut fresh = |prefix: &str| {
        serial += 1;
        format!("{prefix}{id}-{serial}")
    };
    while !stop.load(Ordering::Relaxed) {
        let f = own.join(format!("f{}", rng.below(16)));
        let g = own.join(format!("f{}", rng.below(16)));
        let base = mnt.join(format!(
            "base/d{}/f{}.txt",
            rng.below(BASE_DIRS),
            rng.below(BASE_FILES)
        ));
        match rng.below(14) {
            0 | 1 => {
                let data = format!("writer {id} op {}\n", t.ops).repeat(1 + rng.below(40));
                t.check(&format!("create {f:?}"), fs::write(&f, data), &[]);
            }
            2 => {
                let r = fs::OpenOptions::new()
                    .append(true)
                    .open(&f)
                    .and_then(|mut file| file.write_all(b"appended\n"));
                t.check("append", r, &[ENOENT]);
            }
            3 => {
                t.check("rename in own", fs::rename(&f, &g), &[ENOENT]);
            }
            4 => {
                t.check(
                    "rename to shared",
                    fs::rename(&f, shared.join(fresh("s"))),
                    &[ENOENT],
                );
            }
            5 => {
                // Take any shared file another writer left: races on the same name.
                if let Some(Ok(entry)) = fs::read_dir(&shared).ok().and_then(|mut rd| rd.next()) {
                    t.check(
                        "rename from shared",
                        fs::rename(entry.path(), own.join(fresh("taken"))),
                        &[ENOENT],
                    );
                }
            }
            6 => {
                t.check("unlink", fs::remove_file(&f), &[ENOENT]);
            }
            7 => {
                t.check("hard link", fs::hard_link(&f, &g), &[ENOENT, EEXIST]);
            }
            8 => {
                // Links have names of their own, so no write ever follows one.
                let l = own.join(format!("l{}", rng.below(4)));
                t.check("unlink link", fs::remove_file(&l), &[ENOENT]);
                t.check(
                    "symlink",
                    std::os::unix::fs::symlink(format!("f{}", rng.below(16)), &l),
                    &[],
                );
            }
            9 => {
                let d = own.join(format!("d{}", rng.below(4)));
                if t.check("mkdir", fs::create_dir(&d), &[EEXIST]).is_some() {
                    t.check("file in new dir", fs::write(d.join("x"), b"x\n"), &[]);
                } else {
                    let _ = fs::remove_file(d.join("x"));
                    t.check("rmdir", fs::remove_dir(&d), &[ENOENT, ENOTEMPTY]);
                }
            }
            10 => {
                // Copy-up of a SOURCE file, often the one another writer copies up too.
                let r = fs::OpenOptions::new()
                    .append(true)
                    .open(&base)
                    .and_then(|mut file| file.write_all(format!("writer {id}\n").as_bytes()));
                t.check("write SOURCE file", r, &[ENOENT]);
            }
            11 => {
                t.check("delete SOURCE file", fs::remove_file(&base), &[ENOENT]);
            }
            12 => {
                let to = base.with_file_name(fresh("moved"));
                t.check(
                    &format!("rename SOURCE file {base:?}"),
                    fs::rename(&base, to),
                    &[ENOENT],
                );
            }
            _ => {
                // A directory of SOURCE cannot move in an overlay view: always EXDEV.
                let dir = mnt.join(format!("base/d{}/sub", rng.below(BASE_DIRS)));
                let to = own.join(fresh("sub"));
                t.ops += 1;
                match fs::rename(&dir, &to) {
                    Err(e) if e.raw_os_error() == Some(EXDEV) => {}
                    other => t
                        .unexplained
                        .push(format!("rename SOURCE dir: {other:?}, wanted EXDEV")),
                }
                let truncated = fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .and_then(|file| file.set_len(rng.below(100) as u64));
                t.check("truncate", truncated, &[ENOENT]);
            }
        }
    }
    t
}

/// One reader: walks the whole view, stats and reads everything, and checks `keep/`.
fn reader(mnt: PathBuf, stop: Arc<AtomicBool>) -> Tally {
    use libc::ENOENT;
    let mut t = Tally::default();
    let mut walks = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut stack = vec![mnt.clone()];
        while let Some(dir) = stack.pop() {
            let Some(rd) = t.check("read_dir", fs::read_dir(&dir), &[ENOENT]) else {
                continue;
            };
            for entry in rd {
                let Some(entry) = t.check("readdir", entry, &[ENOENT]) else {
                    continue;
                };
                let path = entry.path();
                let Some(meta) = t.check("lstat", fs::symlink_metadata(&path), &[ENOENT]) else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.is_file() {
                    t.check("read", fs::read(&path), &[ENOENT]);
                } else if meta.file_type().is_symlink() {
                    t.check("readlink", fs::read_link(&path), &[ENOENT]);
                }
            }
        }
        for i in 0..KEEP_FILES {
            let path = mnt.join(format!("keep/k{i}.txt"));
            if let Some(data) = t.check("read keep", fs::read(&path), &[]) {
                if data != keep_content(i) {
                    t.unexplained
                        .push(format!("{} has other content", path.display()));
                }
            }
        }
        walks += 1;
    }
    if walks == 0 {
        t.unexplained.push("no walk finished".into());
    }
    t
}

/// A `sh` process looping through its own files until `seconds` have passed; it stops at the
/// first failing command.
fn shell_worker(mnt: &Path, seconds: u64) -> std::process::Child {
    let script = r#"
        set -eu
        cd "$1"
        mkdir sh
        cd sh
        end=$(( $(date +%s) + $2 ))
        i=0
        while [ "$(date +%s)" -lt "$end" ]; do
            echo "line $i" > "a$i"
            mv "a$i" "b$i"
            cat "b$i" > /dev/null
            ln "b$i" "c$i"
            if [ "$i" -ge 3 ]; then rm "b$((i - 3))" "c$((i - 3))"; fi
            i=$((i + 1))
        done
        echo "$i"
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(mnt)
        .arg(seconds.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

/// Everything visible below `root`: path -> kind, mode, link count and content (files),
/// target (symlinks).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}")) {
            let path = entry.unwrap().path();
            let meta =
                fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {path:?}: {e}"));
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            let desc = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else if meta.is_file() {
                let mut h = DefaultHasher::new();
                h.write(&fs::read(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}")));
                format!(
                    "file {mode:o} nlink={} size={} {:016x}",
                    meta.nlink(),
                    meta.len(),
                    h.finish()
                )
            } else {
                format!("symlink -> {:?}", fs::read_link(&path).unwrap())
            };
            out.insert(rel, desc);
        }
    }
    out
}

#[test]
fn overlay_churn_with_readers() {
    let scene = Scene::new();
    seed_source(&scene);
    let overlay = scene.base().join("overlay");
    let before = tree_digest(&scene.src);
    let overlay_arg = overlay.to_str().unwrap().to_string();
    let args = [
        "--writes",
        "overlay",
        "--overlay",
        overlay_arg.as_str(),
        "--writable",
        "**",
        "--no-presets",
    ];
    let mounted = scene.mount(&args);
    let pid = mounted.pid;
    fs::create_dir(mounted.m("shared")).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    for id in 0..WRITERS {
        let (mnt, stop, tx) = (mounted.mnt().to_path_buf(), stop.clone(), tx.clone());
        thread::spawn(move || tx.send((format!("writer {id}"), writer(mnt, id, stop))));
    }
    for id in 0..READERS {
        let (mnt, stop, tx) = (mounted.mnt().to_path_buf(), stop.clone(), tx.clone());
        thread::spawn(move || tx.send((format!("reader {id}"), reader(mnt, stop))));
    }
    drop(tx);
    let mut sh = shell_worker(mounted.mnt(), CHURN.as_secs());

    let started = Instant::now();
    thread::sleep(CHURN);
    stop.store(true, Ordering::Relaxed);
    let deadline = started + CHURN + GRACE;

    let mut tallies = Vec::new();
    for _ in 0..WRITERS + READERS {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(done) => tallies.push(done),
            Err(_) => panic!(
                "workers still running {GRACE:?} after the churn stopped (finished: {:?}): the mount hangs",
                tallies.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ),
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let Some(status) = wait_child(&mut sh, left) else {
        let _ = sh.kill();
        panic!("the sh worker did not finish before the deadline: the mount hangs");
    };
    let mut sh_out = String::new();
    let mut sh_err = String::new();
    sh.stdout
        .take()
        .unwrap()
        .read_to_string(&mut sh_out)
        .unwrap();
    sh.stderr
        .take()
        .unwrap()
        .read_to_string(&mut sh_err)
        .unwrap();
    assert!(
        status.success(),
        "the sh worker failed ({status}): {sh_err}"
    );
    let elapsed = started.elapsed();

    assert!(alive(pid), "the daemon died during the churn");
    let mut ops = 0;
    let mut raced = 0;
    let mut problems = Vec::new();
    for (name, t) in &tallies {
        ops += t.ops;
        raced += t.raced;
        problems.extend(t.unexplained.iter().map(|p| format!("{name}: {p}")));
    }
    assert!(
        problems.is_empty(),
        "errors no race explains:\n{}",
        problems.join("\n")
    );
    let sh_rounds: u64 = sh_out.trim().parse().unwrap_or(0);
    assert!(sh_rounds > 0, "the sh worker did no round: {sh_out}");

    // The view as it stands, then the same after unmount and remount.
    let seen = snapshot(mounted.mnt());
    drop(mounted);
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "the daemon outlived unmount"
    );
    assert_same_tree(&before, &tree_digest(&scene.src), "after the churn");
    let remounted = scene.mount(&args);
    let again = snapshot(remounted.mnt());
    drop(remounted);
    if seen != again {
        let mut diffs = Vec::new();
        for (k, v) in &seen {
            match again.get(k) {
                None => diffs.push(format!("gone {k:?}: {v}")),
                Some(w) if w != v => diffs.push(format!("changed {k:?}: {v} -> {w}")),
                Some(_) => {}
            }
        }
        for (k, v) in &again {
            if !seen.contains_key(k) {
                diffs.push(format!("appeared {k:?}: {v}"));
            }
        }
        panic!(
            "the view after remount differs from the view before unmount:\n{}",
            diffs.join("\n")
        );
    }
    let diff = run_with_timeout(
        {
            let mut cmd = scopefs();
            cmd.arg("diff").arg(&overlay);
            cmd
        },
        Duration::from_secs(30),
    );
    assert!(
        diff.status.success(),
        "scopefs diff of the churned overlay: {}",
        diff.stderr
    );
    assert_same_tree(&before, &tree_digest(&scene.src), "after the remount");
    println!(
        "churn: {WRITERS} writers, {READERS} readers and one sh process for {elapsed:.1?}: \
         {ops} operations ({raced} lost a race: ENOENT, EEXIST, ENOTEMPTY), {sh_rounds} sh rounds, \
         {} entries visible after, {} changes in the overlay; SOURCE unchanged, remount identical",
        seen.len(),
        diff.stdout.lines().count()
    );
}

/// Makes this process's descriptor limit at least `need` and returns it: the soft limit goes
/// up to the hard one, and a hard limit below `need` goes up too, as root may (up to
/// fs.nr_open). The daemon, started from here, inherits it. Fails naming the hard limit when
/// it stays too low.
fn raise_fd_limit(need: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    let hard = lim.rlim_max;
    lim.rlim_max = lim.rlim_max.max(need);
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the struct we pass.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(
        rc,
        0,
        "this test holds {OPEN_FILES} files open and needs a descriptor limit of at least {need}; \
         the hard limit (ulimit -Hn) is {hard} and raising it failed ({}): run it as root, or raise \
         the hard limit first (ulimit -Hn {need}; docker run --ulimit nofile={need})",
        io::Error::last_os_error()
    );
    lim.rlim_cur
}

const OPEN_FILES: usize = 10_000;

/// One test at a time holds its 10,000 files: two at once in this process would pass the hard
/// limit of 20,000 descriptors that this machine cannot raise.
static OPEN_FILES_HELD: Mutex<()> = Mutex::new(());

/// A view where every open reaches the daemon and holds a descriptor there until released:
/// --cache never keeps opens (a read-only view with caching answers them with ENOSYS).
#[test]
fn ten_thousand_open_files() {
    ten_thousand_open(&["--no-presets", "--cache", "never"], true);
}

/// The default read-only view: opens never reach the daemon, so 10,000 open files cost it
/// no descriptor, and every read is still served.
#[test]
fn ten_thousand_open_files_in_a_read_only_view_cost_the_daemon_nothing() {
    ten_thousand_open(&["--no-presets"], false);
}

/// Opens 10,000 files through a view mounted with `args` at once and reads each. With
/// `per_open`, the daemon must hold one descriptor per open file (else the count is wrong)
/// and stay under the limit; without, it must hold no more than it started with, give or
/// take a few.
fn ten_thousand_open(args: &[&str], per_open: bool) {
    let _one_at_a_time = OPEN_FILES_HELD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // The daemon is started from this process and inherits the raised limit.
    let limit = raise_fd_limit(OPEN_FILES as u64 + 500);
    let scene = Scene::new();
    let name = |i: usize| format!("d{:02}/f{:04}", i / 100, i);
    for d in 0..OPEN_FILES / 100 {
        fs::create_dir(scene.s(format!("d{d:02}"))).unwrap();
    }
    for i in 0..OPEN_FILES {
        fs::write(scene.s(name(i)), [(i % 251) as u8, b'\n']).unwrap();
    }
    let mounted = scene.mount(args);
    let pid = mounted.pid;
    let baseline = fd_count(pid).unwrap();

    let started = Instant::now();
    let mut files = Vec::with_capacity(OPEN_FILES);
    for i in 0..OPEN_FILES {
        let path = mounted.m(name(i));
        files.push(fs::File::open(&path).unwrap_or_else(|e| panic!("open {path:?}: {e}")));
    }
    for (i, file) in files.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        file.read_exact(&mut byte)
            .unwrap_or_else(|e| panic!("read {}: {e}", name(i)));
        assert_eq!(byte[0], (i % 251) as u8, "first byte of {}", name(i));
    }
    let held = fd_count(pid).unwrap();
    let opened_in = started.elapsed();
    assert!(alive(pid), "the daemon died with {OPEN_FILES} files open");
    assert!(
        (held as u64) < limit,
        "the daemon holds {held} descriptors for {OPEN_FILES} open files: at its limit of {limit}"
    );
    if per_open {
        assert!(
            held >= OPEN_FILES,
            "the daemon holds {held} descriptors: fewer than the {OPEN_FILES} open files, so the count is wrong"
        );
    } else {
        assert!(
            held <= baseline + 16,
            "the daemon holds {held} descriptors for {OPEN_FILES} open files (it started with {baseline}): opens reached it"
        );
    }

    drop(files);
    // Release reaches the daemon asynchronously.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = fd_count(pid).unwrap();
    while after > baseline + 16 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        after = fd_count(pid).unwrap();
    }
    assert!(
        after <= baseline + 16,
        "the daemon still holds {after} descriptors after every file was closed (it started with {baseline})"
    );
    println!(
        "{OPEN_FILES} files open through the view at once ({args:?}, opened and read in {opened_in:.1?}): \
         daemon descriptors {baseline} before, {held} while held, {after} after closing; \
         limit {limit}"
    );
}
