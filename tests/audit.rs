//! The audit log (SPEC §6) through a real mount: refused writes and lookups of hidden names
//! that exist are recorded with the rule that decided; probes of absent names are not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::time::Duration;

use common::*;

fn read_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn denied_unlink_and_hidden_lookup_are_logged_absent_names_are_not() {
    require_fuse();
    let s = Scene::new();
    s.file("a.txt");
    s.file_with(".env", b"SECRET=1\n");
    let log = s.base().join("audit.jsonl");
    let m = s.mount(&["--audit-log", log.to_str().unwrap()]);

    for _ in 0..3 {
        assert_errno(fs::remove_file(m.m("a.txt")), libc::EROFS, "unlink a.txt");
    }
    assert_errno(fs::read(m.m(".env")), libc::ENOENT, "read .env");
    assert_errno(
        fs::read(m.m("no-such-file")),
        libc::ENOENT,
        "read no-such-file",
    );
    drop(m);

    let lines = read_log(&log);
    let unlink: Vec<_> = lines.iter().filter(|l| l["op"] == "unlink").collect();
    assert_eq!(unlink.len(), 1, "repeats collapse into one line: {lines:?}");
    let unlink = unlink[0];
    assert_eq!(unlink["event"], "denied");
    assert_eq!(unlink["path"], "a.txt");
    assert_eq!(unlink["errno"], "EROFS");
    assert_eq!(unlink["rule"], "writes.mode=deny");
    assert_eq!(unlink["count"], 3);
    assert!(
        !unlink["comm"].as_str().unwrap().is_empty(),
        "comm names the program"
    );
    assert!(unlink["pid"].as_u64().unwrap() > 0);
    assert_eq!(unlink["uid"], 0);
    assert!(unlink["time"].as_str().unwrap().ends_with('Z'));

    let env: Vec<_> = lines.iter().filter(|l| l["path"] == ".env").collect();
    assert!(
        !env.is_empty(),
        "the lookup of the hidden .env is logged: {lines:?}"
    );
    assert!(
        env.iter()
            .all(|l| l["event"] == "denied" && l["errno"] == "ENOENT")
    );
    assert!(
        env.iter()
            .any(|l| l["op"] == "lookup" && l["rule"] == "preset secrets: \".env\""),
        "the rule that hid .env is named: {env:?}"
    );
    assert!(
        lines.iter().all(|l| l["path"] != "no-such-file"),
        "a probe of a name that does not exist is not logged: {lines:?}"
    );
}

#[test]
fn writes_events_record_changes_in_an_overlay() {
    require_fuse();
    let s = Scene::new();
    s.file("a.txt");
    s.file(".env");
    let log = s.base().join("audit.jsonl");
    let overlay = s.base().join("overlay");
    let policy = s.policy(&format!(
        "[writes]\nmode = \"overlay\"\noverlay = {:?}\n[audit]\nlog = {:?}\nevents = \"writes\"\n",
        overlay.to_str().unwrap(),
        log.to_str().unwrap()
    ));
    let m = s.mount(&["-c", policy.to_str().unwrap()]);
    fs::write(m.m("new.txt"), b"hello").unwrap();
    assert_errno(fs::read(m.m(".env")), libc::ENOENT, "read the hidden .env");
    drop(m);
    std::thread::sleep(Duration::from_millis(10));
    let lines = read_log(&log);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "write" && l["path"] == "new.txt"),
        "the new file is logged as a write: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["event"] == "denied"
            && l["path"] == ".env"
            && l["errno"] == "ENOENT"
            && l["rule"] == "preset secrets: \".env\""),
        "reading the hidden .env is a denial naming the preset: {lines:?}"
    );
}

/// `events = "all"`: reads (opens and listings) are logged too, besides changes and denials.
#[test]
fn all_events_log_reads_writes_and_denials() {
    require_fuse();
    let s = Scene::new();
    s.file("a.txt");
    s.file("sub/b.txt");
    let log = s.base().join("audit.jsonl");
    let overlay = s.base().join("overlay");
    let policy = s.policy(&format!(
        "[writes]\nmode = \"overlay\"\noverlay = {:?}\n[audit]\nlog = {:?}\nevents = \"all\"\n",
        overlay.to_str().unwrap(),
        log.to_str().unwrap()
    ));
    let m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_eq!(
        fs::read(m.m("a.txt")).unwrap(),
        content_for("a.txt".as_ref())
    );
    assert_eq!(listing(&m.m("sub")), ["b.txt"]);
    fs::write(m.m("new.txt"), b"hello").unwrap();
    assert_errno(
        mknod(&m.m("dev"), libc::S_IFCHR | 0o600, libc::makedev(1, 3)),
        libc::EPERM,
        "mknod of a device",
    );
    drop(m);
    let lines = read_log(&log);
    let has = |event: &str, op: &str, path: &str| {
        lines
            .iter()
            .any(|l| l["event"] == event && l["op"] == op && l["path"] == path)
    };
    assert!(has("read", "open", "a.txt"), "the read of a.txt: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "read" && l["path"] == "sub"),
        "the listing of sub: {lines:?}"
    );
    assert!(has("write", "create", "new.txt"), "the new file: {lines:?}");
    assert!(has("denied", "mknod", "dev"), "the refusal: {lines:?}");
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "read")
            .all(|l| l.get("errno").is_none()),
        "reads carry no errno: {lines:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A log that cannot keep up, or cannot be written: requests are answered all the same

/// `scopefs mount --foreground ARGS SOURCE MOUNTPOINT` of `s`, waited for; its stderr is
/// captured, which is where a detached daemon's reports would be lost.
fn foreground(s: &Scene, args: &[&str]) -> (std::process::Child, Capture) {
    let cap = Capture::new();
    let mut cmd = scopefs();
    cmd.arg("mount")
        .arg("--foreground")
        .args(args)
        .arg(&s.src)
        .arg(&s.mnt);
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().expect("spawn scopefs mount --foreground");
    if wait_mounted(&s.mnt, Duration::from_secs(30)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        cleanup_mount(&s.mnt, None);
        panic!("nothing mounted within 30 s\n{}", cap.stderr());
    }
    (child, cap)
}

/// SIGTERM to a foreground daemon: it must exit 0, leaving nothing mounted. Returns its stderr.
fn stop(s: &Scene, mut child: std::process::Child, cap: &Capture) -> String {
    signal(child.id() as i32, libc::SIGTERM);
    let status = wait_child(&mut child, Duration::from_secs(60));
    let mounted = is_mounted(&s.mnt);
    cleanup_mount(&s.mnt, Some(child.id() as i32));
    let status = status.expect("the daemon did not exit within 60 s of SIGTERM");
    assert!(status.success(), "daemon exit {status}\n{}", cap.stderr());
    assert!(!mounted, "still mounted after SIGTERM");
    cap.stderr()
}

/// Refuses `unlink` of `paths`, in turn, `times` times in all, each within a few seconds,
/// however the log fares. (Repeats of one event are collapsed before they are written, so the
/// paths alternate to make the writer write.)
fn refuse_unlinks(paths: &[std::path::PathBuf], times: usize) {
    let paths = paths.to_vec();
    within(
        Duration::from_secs(120),
        "unlinks while the log is stuck",
        move || {
            for i in 0..times {
                let started = std::time::Instant::now();
                let path = &paths[i % paths.len()];
                assert_errno(fs::remove_file(path), libc::EROFS, &format!("unlink {i}"));
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "unlink {i} took {:?}: the request waited for the log",
                    started.elapsed()
                );
            }
        },
    );
}

/// The number in "scopefs: N audit event(s) could not be written".
fn dropped(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("scopefs: ")?
                .split_once(" audit event(s) could not be written")
                .and_then(|(n, _)| n.parse().ok())
        })
        .unwrap_or(0)
}

/// How many `op` events of `path` the log's lines account for (collapsed lines count many).
fn logged(lines: &[serde_json::Value], op: &str, path: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l["op"] == op && l["path"] == path)
        .map(|l| l["count"].as_u64().unwrap_or(1))
        .sum()
}

/// The writer is stuck (the log lies on a view whose daemon is frozen), so its queue fills:
/// requests are still answered at once, the overflow is counted as dropped and reported, and
/// every event is either in the log or in that count.
#[test]
fn a_full_queue_never_blocks_a_request() {
    const UNLINKS: usize = 12_000;
    let logs = Scene::new();
    let logs_overlay = logs.base().join("overlay");
    let log_view = logs.mount(&["--overlay", logs_overlay.to_str().unwrap()]);
    let log = log_view.m("audit.jsonl");
    let s = Scene::new();
    s.file("a.txt");
    s.file("b.txt");
    let (child, cap) = foreground(&s, &["--audit-log", log.to_str().unwrap()]);
    let checked = std::panic::catch_unwind(|| {
        assert_errno(
            fs::remove_file(s.m("a.txt")),
            libc::EROFS,
            "the first unlink",
        );
        signal(log_view.pid, libc::SIGSTOP);
        refuse_unlinks(&[s.m("b.txt"), s.m("a.txt")], UNLINKS);
    });
    signal(log_view.pid, libc::SIGCONT);
    let stderr = stop(&s, child, &cap);
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
    let lines = read_log(&log);
    let dropped = dropped(&stderr);
    assert!(
        dropped > 0,
        "{UNLINKS} events behind a stuck writer, none reported dropped; stderr:\n{stderr}"
    );
    assert_eq!(
        logged(&lines, "unlink", "a.txt") + logged(&lines, "unlink", "b.txt") + dropped,
        UNLINKS as u64 + 1,
        "every event is logged or counted as dropped ({dropped} dropped); log: {lines:?}"
    );
}

/// The log's file system fills up: requests are still answered, the daemon says on stderr
/// that events are being dropped and how many, every event is logged or counted, and the log
/// stays whole JSON lines — also once there is room again.
#[test]
fn a_full_disk_never_fails_a_request() {
    const FILES: usize = 600;
    let s = Scene::new();
    for i in 0..FILES {
        s.file(format!("f{i:04}"));
    }
    let logfs = s.base().join("logfs");
    fs::create_dir(&logfs).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "scopefs-test-log"])
        .arg(&logfs)
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount a 64 KiB tmpfs for the log");
    let filler = logfs.join("filler");
    let result = std::panic::catch_unwind(|| {
        // Leave the log about 12 KiB, the room for some fifty lines.
        fs::write(&filler, vec![0u8; 52 << 10]).unwrap();
        let log = logfs.join("audit.jsonl");
        let (child, cap) = foreground(&s, &["--audit-log", log.to_str().unwrap()]);
        let checked = std::panic::catch_unwind(|| {
            within(Duration::from_secs(120), "unlinks on a full disk", {
                let mnt = s.mnt.clone();
                move || {
                    for i in 0..FILES {
                        let path = mnt.join(format!("f{i:04}"));
                        assert_errno(
                            fs::remove_file(&path),
                            libc::EROFS,
                            &format!("unlink f{i:04}"),
                        );
                    }
                }
            });
            let full = (0..600).any(|_| {
                std::thread::sleep(Duration::from_millis(50));
                cap.stderr().contains("events are being dropped")
            });
            assert!(full, "no report of dropped events:\n{}", cap.stderr());
            // Room again: what comes next is written whole.
            fs::remove_file(&filler).unwrap();
            assert_errno(
                fs::remove_file(s.m("f0000")),
                libc::EROFS,
                "unlink after room",
            );
        });
        let stderr = stop(&s, child, &cap);
        if let Err(e) = checked {
            std::panic::resume_unwind(e);
        }
        let text = fs::read_to_string(&log).unwrap();
        for line in text.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "the log holds a line that is not JSON (a line cut short by the full disk?): {line:?}\nlog:\n{text}"
            );
        }
        let lines = read_log(&log);
        let dropped = dropped(&stderr);
        assert!(dropped > 0, "nothing reported dropped:\n{stderr}");
        let total: u64 = (0..FILES)
            .map(|i| logged(&lines, "unlink", &format!("f{i:04}")))
            .sum();
        assert_eq!(
            total + dropped,
            FILES as u64 + 1,
            "every event logged or counted ({dropped} dropped)"
        );
        assert!(
            lines.last().is_some_and(|l| l["path"] == "f0000"),
            "the event after room was made is the last line: {:?}",
            lines.last()
        );
    });
    let unmounted = std::process::Command::new("umount")
        .arg(&logfs)
        .status()
        .expect("run umount");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(unmounted.success(), "umount the log's tmpfs");
}

/// The log's file system goes away (it lies on a view whose daemon is killed): writing the
/// log fails from then on, and requests are answered all the same.
#[test]
fn an_unwritable_log_never_fails_a_request() {
    let logs = Scene::new();
    let logs_overlay = logs.base().join("overlay");
    let mut log_view = logs.mount(&["--overlay", logs_overlay.to_str().unwrap()]);
    let log = log_view.m("audit.jsonl");
    let s = Scene::new();
    s.file("a.txt");
    s.file("b.txt");
    let (child, cap) = foreground(&s, &["--audit-log", log.to_str().unwrap()]);
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_errno(fs::remove_file(s.m("a.txt")), libc::EROFS, "unlink a.txt");
        log_view.kill();
        for _ in 0..3 {
            within(Duration::from_secs(30), "unlink with the log gone", {
                let b = s.m("b.txt");
                move || assert_errno(fs::remove_file(&b), libc::EROFS, "unlink b.txt")
            });
            assert_eq!(
                fs::read(s.m("a.txt")).unwrap(),
                content_for("a.txt".as_ref())
            );
            // Past the collapse time, so each is written (and fails) on its own.
            std::thread::sleep(Duration::from_millis(600));
        }
        let reported = (0..600).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            cap.stderr().contains("cannot write the audit log")
        });
        assert!(reported, "no report of the failing log:\n{}", cap.stderr());
    }));
    let stderr = stop(&s, child, &cap);
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
    assert!(
        dropped(&stderr) >= 3,
        "the unlinks after the log went away are counted as dropped:\n{stderr}"
    );
}
