//! A daemon killed in the middle of writes: the dead mount is cleared with `scopefs umount`,
//! the same overlay mounts again, and every file that was fsync'd before the kill is intact.

use std::fs;
use std::process::{Command, Stdio};
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
    assert_errno(
        fs::read_dir(m.mnt()),
        libc::ENOTCONN,
        "listing the dead mount",
    );
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
