//! A daemon killed in the middle of writes: the dead mount is cleared with `scopefs umount`,
//! the same overlay mounts again, every file that was fsync'd before the kill is intact, and
//! a copy-up cut short leaves the old state or the new one, never a part.

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

/// What the writer puts in file number `i`: a few KiB that name it.
fn content(i: u64) -> String {
    (i..=i + 1500).map(|n| format!("{n}\n")).collect()
}

/// Writes `w/fN` for N = 1, 2, ...: odd files through `dd conv=fsync`, each then appended to
/// the record (outside the mount) once dd has returned; even files without fsync. Stops at the
/// first failure, which the killed daemon causes.
const WRITER: &str = r#"
set -e
dir="$1"; record="$2"; i=1
while :; do
    if [ $((i % 2)) -eq 1 ]; then
        seq "$i" $((i + 1500)) | dd of="$dir/w/f$i" conv=fsync status=none
        echo "$i" >> "$record"
    else
        seq "$i" $((i + 1500)) > "$dir/w/f$i"
    fi
    i=$((i + 1))
done
"#;

#[test]
fn fsynced_files_survive_a_killed_daemon() {
    let r = Rig::new(Mode::Overlay);
    r.scene.file("w/keep.txt");
    let args = r.policy_args("", "", "");
    let before = tree_digest(&r.scene.src);
    let record = r.scene.base().join("fsynced.log");
    fs::write(&record, b"").unwrap();
    let mut m = r.mount(&args);
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(WRITER)
        .arg("sh")
        .arg(m.mnt())
        .arg(&record)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let synced = || fs::read_to_string(&record).unwrap().lines().count();
    while synced() < 40 {
        assert!(
            Instant::now() < deadline,
            "the writer fsync'd only {} files in 60 s",
            synced()
        );
        assert!(
            writer.try_wait().unwrap().is_none(),
            "the writer stopped before the daemon was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    m.kill();
    let status = wait_child(&mut writer, Duration::from_secs(30)).unwrap_or_else(|| {
        let _ = writer.kill();
        let _ = writer.wait();
        panic!("the writer kept running on a dead mount")
    });
    assert!(
        !status.success(),
        "the writer cannot succeed on a dead mount"
    );
    // The mount is dead: still in the mount table, answering ENOTCONN, until `scopefs umount`
    // clears it.
    assert!(
        is_mounted(m.mnt()),
        "the killed daemon's mount vanished by itself"
    );
    assert_dead(m.mnt());
    let mut cmd = scopefs();
    cmd.arg("umount").arg(m.mnt());
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "scopefs umount of a dead mount: {}",
        out.stderr
    );
    assert_not_mounted(m.mnt(), "after scopefs umount of the dead mount");
    drop(m);
    let recorded: Vec<u64> = fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| l.parse().expect("a file number"))
        .collect();
    let m = r.mount(&args);
    for i in &recorded {
        let rel = format!("w/f{i}");
        let got = fs::read_to_string(m.m(&rel))
            .unwrap_or_else(|e| panic!("{rel}, fsync'd before the kill, after remount: {e}"));
        assert!(
            got == content(*i),
            "{rel}, fsync'd before the kill, changed"
        );
    }
    assert_eq!(
        fs::read(m.m("w/keep.txt")).unwrap(),
        content_for("w/keep.txt".as_ref())
    );
    // The overlay still takes writes.
    fs::write(m.m("w/after"), b"after\n").unwrap();
    drop(m);
    assert_same_tree(&before, &tree_digest(&r.scene.src), "crash");
}

/// The errnos a dead FUSE connection gives: ENOTCONN once the kernel has ended it, and
/// ECONNABORTED for requests that were in hand (or sent while it was being aborted).
const DEAD: [i32; 2] = [libc::ENOTCONN, libc::ECONNABORTED];

/// Asserts that listing `mnt` fails as a dead mount does.
fn assert_dead(mnt: &Path) {
    let errno = errno_of(&fs::read_dir(mnt)).expect("listing a dead mount fails");
    assert!(
        DEAD.contains(&errno),
        "listing the dead mount: {} (want ENOTCONN or ECONNABORTED)",
        errno_name(errno)
    );
}

/// Large files: each copy-up copies 8 MiB, so one is often in flight.
const BIG_FILES: usize = 8;
const BIG: usize = 8 << 20;
/// Small files, each rewritten in one write of the same size.
const SMALL_FILES: usize = 400;
const SMALL: usize = 4000;

fn big_content(i: usize) -> Vec<u8> {
    let line = format!("big file {i}, old content\n");
    line.bytes().cycle().take(BIG).collect()
}

fn small_content(i: usize, new: bool) -> Vec<u8> {
    let line = format!(
        "small file {i}, {} content\n",
        if new { "new" } else { "old" }
    );
    line.bytes().cycle().take(SMALL).collect()
}

/// A regular file below `dir` shorter than `full`: a copy being written.
/// A regular file in `dir` larger than a small file and shorter than a large one: a copy of a
/// large file being written.
fn partial_copy_in(dir: &Path) -> Option<String> {
    let entries = fs::read_dir(dir).ok()?;
    entries.flatten().find_map(|e| {
        let meta = e.metadata().ok()?;
        let len = meta.len();
        (meta.is_file() && len > SMALL as u64 && len < BIG as u64)
            .then(|| format!("{} ({len} bytes)", e.path().display()))
    })
}

/// Every thread of `pid` has stopped (after SIGSTOP) or the process is gone.
fn all_stopped(pid: i32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|t| {
        fs::read_to_string(t.path().join("stat")).map_or(true, |stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| {
                matches!(
                    rest.trim_start().chars().next(),
                    Some('T' | 't' | 'Z' | 'X')
                )
            })
        })
    })
}

/// Copy-ups cut short by a crash. While one thread chmods large SOURCE files (each chmod
/// copies 8 MiB up first) and others rewrite small ones in single writes, the test freezes the
/// daemon (SIGSTOP) again and again until it catches a copy half written — a file in the
/// overlay's `work/` (or, were copy-up built in place, in `upper/`) shorter than its source —
/// and kills it there. After the dead mount is cleared and the overlay mounted again, every
/// large file reads exactly its old content with its old or new mode, and every small file
/// reads its old content or its new one, never a mix, an empty or a short file.
#[test]
fn a_crash_in_the_middle_of_copy_ups_leaves_old_or_new() {
    let r = Rig::new(Mode::Overlay);
    for i in 0..BIG_FILES {
        r.scene.file_with(format!("big/b{i}"), &big_content(i));
    }
    for i in 0..SMALL_FILES {
        r.scene
            .file_with(format!("small/s{i}"), &small_content(i, false));
    }
    let args = r.policy_args("", "", "");
    let before = tree_digest(&r.scene.src);
    let mut m = r.mount(&args);
    let mnt = m.mnt().to_path_buf();
    let work = r.overlay().join("work");
    let upper_big = r.overlay().join("upper/big");

    let stop = Arc::new(AtomicBool::new(false));
    let chmods = Arc::new(AtomicUsize::new(0));
    let rewrites = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    {
        let (mnt, stop, chmods, rewrites) =
            (mnt.clone(), stop.clone(), chmods.clone(), rewrites.clone());
        writers.push(thread::spawn(move || -> io::Result<()> {
            // Some small files rewritten first, so that both states are there to find.
            while rewrites.load(Ordering::Relaxed) < 20 && !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1));
            }
            for i in 0..BIG_FILES {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                fs::set_permissions(
                    mnt.join(format!("big/b{i}")),
                    fs::Permissions::from_mode(0o640),
                )?;
                chmods.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    for w in 0..2 {
        let (mnt, stop, rewrites) = (mnt.clone(), stop.clone(), rewrites.clone());
        writers.push(thread::spawn(move || -> io::Result<()> {
            for i in (w..SMALL_FILES).step_by(2) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(mnt.join(format!("small/s{i}")))?;
                file.write_all_at(&small_content(i, true), 0)?;
                rewrites.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }

    // Freeze the daemon until a copy is caught half written, then kill it there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rewrites.load(Ordering::Relaxed) < 20 {
        assert!(
            Instant::now() < deadline,
            "20 small files not rewritten in 60 s"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let caught = loop {
        signal(m.pid, libc::SIGSTOP);
        while !all_stopped(m.pid) {
            thread::sleep(Duration::from_millis(1));
        }
        let partial = partial_copy_in(&work).or_else(|| partial_copy_in(&upper_big));
        if let Some(partial) = partial {
            break partial;
        }
        signal(m.pid, libc::SIGCONT);
        assert!(
            Instant::now() < deadline && chmods.load(Ordering::Relaxed) < BIG_FILES,
            "no copy-up was caught half written in 60 s ({} of {BIG_FILES} chmods done)",
            chmods.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(2));
    };
    m.kill();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        match writer.join().expect("writer thread") {
            Ok(()) => {}
            Err(e) => assert!(
                e.raw_os_error().is_some_and(|n| DEAD.contains(&n)),
                "a writer stopped by the crash failed with {e} (want ENOTCONN or ECONNABORTED)"
            ),
        }
    }
    assert_dead(&mnt);
    println!(
        "killed with a copy half written: {caught}; {} chmods and {} rewrites done before",
        chmods.load(Ordering::Relaxed),
        rewrites.load(Ordering::Relaxed)
    );
    drop(m);

    let m = r.mount(&args);
    for i in 0..BIG_FILES {
        let rel = format!("big/b{i}");
        let data = fs::read(m.m(&rel)).unwrap_or_else(|e| panic!("{rel} after the crash: {e}"));
        assert!(
            data == big_content(i),
            "{rel} after the crash: {} bytes, not its old content ({BIG} bytes)",
            data.len()
        );
        let mode = fs::metadata(m.m(&rel)).unwrap().mode() & 0o7777;
        assert!([0o644, 0o640].contains(&mode), "{rel}: mode {mode:o}");
    }
    let mut new = 0;
    for i in 0..SMALL_FILES {
        let rel = format!("small/s{i}");
        let data = fs::read(m.m(&rel)).unwrap_or_else(|e| panic!("{rel} after the crash: {e}"));
        if data == small_content(i, true) {
            new += 1;
        } else {
            assert!(
                data == small_content(i, false),
                "{rel} after the crash is neither its old nor its new content: {:?}",
                String::from_utf8_lossy(&data[..data.len().min(80)])
            );
        }
    }
    assert!(
        fs::read_dir(&work).unwrap().next().is_none(),
        "work/ is emptied at the mount"
    );
    println!("after the remount: {new} small files new, the rest old; every large file whole");
    drop(m);
    assert_same_tree(&before, &tree_digest(&r.scene.src), "copy-up crash");
}
