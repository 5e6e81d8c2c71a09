//! Mount lifecycle and bad input (SPEC §1): exit codes, one-line errors, nothing left mounted,
//! signals, `umount` of live and dead mounts, and kernel permission checks with --allow-other.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

// --- mounting and unmounting ----------------------------------------------------------------

#[test]
fn mount_returns_once_the_view_answers() {
    let s = Scene::new();
    s.file("a.txt");
    s.file(".env");
    let m = s.mount(&[]);
    // No waiting: the view answers as soon as the command returned.
    assert_listing(m.mnt(), &["a.txt"]);
    assert_visible(&s, "a.txt");
    assert!(
        alive(m.pid),
        "daemon {} named in mountinfo is running",
        m.pid
    );
    assert_eq!(m.entry.fstype, "fuse.scopefs");
    assert_eq!(m.entry.source, format!("scopefs:{}", m.pid));
}

#[test]
fn mount_options_are_ro_nosuid_nodev() {
    let s = Scene::new();
    s.file("a.txt");
    let m = s.mount(&[]);
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(
            m.entry.mount_options.iter().any(|o| o == opt),
            "mount options lack {opt}: {}",
            m.entry.line
        );
    }
}

#[test]
fn umount_waits_for_the_daemon_to_exit() {
    let s = Scene::new();
    s.file("a.txt");
    let before = tree_digest(&s.src);
    let m = s.mount(&[]);
    let pid = m.pid;
    let mut cmd = scopefs();
    cmd.arg("umount").arg(&s.mnt);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "scopefs umount: {}\n{}",
        out.status,
        out.stderr
    );
    // Checked at once, without polling: umount returns only after the daemon has gone.
    assert!(
        !alive(pid),
        "daemon {pid} still running when umount returned (state {:?})",
        proc_state(pid)
    );
    assert_not_mounted(&s.mnt, "after scopefs umount");
    drop(m);
    assert_listing(&s.mnt, &[]);
    assert_same_tree(&before, &tree_digest(&s.src), "umount");
}

/// `umount --lazy` detaches a busy view and returns at once; the daemon serves whoever still
/// holds the view and exits when the last of them lets go.
#[test]
fn umount_lazy_returns_at_once_and_detaches_a_busy_view() {
    let s = Scene::new();
    s.file("a.txt");
    let m = s.mount(&[]);
    let pid = m.pid;
    // Holds the view busy for far longer than any bound below (and is ended however the test
    // ends).
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut holder = Holder(
        Command::new("sleep")
            .arg("600")
            .current_dir(&s.mnt)
            .spawn()
            .expect("start a process in the view"),
    );
    let mut cmd = scopefs();
    cmd.arg("umount").arg("--lazy").arg(&s.mnt);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let holder_state = holder.0.try_wait().expect("the holder's state");
    assert!(
        out.status.success(),
        "scopefs umount --lazy: {}\n{}",
        out.status,
        out.stderr
    );
    assert!(
        holder_state.is_none(),
        "umount --lazy returned while the view was still held"
    );
    assert_not_mounted(&s.mnt, "after scopefs umount --lazy");
    assert!(
        alive(pid),
        "the daemon serves the detached view while it is held"
    );
    let held = fs::read_to_string(format!("/proc/{}/cwd/a.txt", holder.0.id()))
        .expect("the holder still reads the detached view");
    assert_eq!(held, "content of a.txt\n");
    drop(holder);
    assert!(
        wait_gone(pid, Duration::from_secs(30)),
        "the daemon exits once the last user of the detached view is gone"
    );
    drop(m);
}

#[test]
fn umount_clears_a_dead_mount_after_kill_9() {
    let s = Scene::new();
    s.file("a.txt");
    let mut m = s.mount(&[]);
    m.kill();
    assert!(is_mounted(&s.mnt), "the dead mount is still in the table");
    // Attributes may still be cached, but opening the directory always asks the daemon; the
    // kernel answers ENOTCONN or, while it is still aborting the connection, ECONNABORTED.
    let dead = errno_of(&fs::read_dir(&s.mnt)).expect("opendir of a dead mount fails");
    assert!(
        [libc::ENOTCONN, libc::ECONNABORTED].contains(&dead),
        "opendir of a dead mount: {}",
        errno_name(dead)
    );
    let mut cmd = scopefs();
    cmd.arg("umount").arg(&s.mnt);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "scopefs umount of a dead mount: {}\n{}",
        out.status,
        out.stderr
    );
    assert_not_mounted(&s.mnt, "after scopefs umount of a dead mount");
    drop(m);
    assert_listing(&s.mnt, &[]);
}

#[test]
fn sigterm_to_the_detached_daemon_unmounts() {
    let s = Scene::new();
    s.file("a.txt");
    let m = s.mount(&[]);
    signal(m.pid, libc::SIGTERM);
    assert!(
        wait_gone(m.pid, Duration::from_secs(10)),
        "daemon still running 10 s after SIGTERM"
    );
    assert_not_mounted(&s.mnt, "after SIGTERM to the daemon");
}

/// Starts `scopefs mount --foreground`, which is itself the daemon, and waits for the mount.
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
    let entry = wait_mounted(&s.mnt, Duration::from_secs(30));
    if let Some(status) = child.try_wait().unwrap() {
        cleanup_mount(&s.mnt, None);
        panic!(
            "scopefs mount --foreground exited with {status}\n{}",
            cap.stderr()
        );
    }
    let Some(entry) = entry else {
        let _ = child.kill();
        let _ = child.wait();
        cleanup_mount(&s.mnt, None);
        panic!(
            "nothing mounted 30 s after --foreground start\n{}",
            cap.stderr()
        );
    };
    if daemon_pid(&entry) != child.id() as i32 {
        cleanup_mount(&s.mnt, Some(child.id() as i32));
        panic!(
            "with --foreground the mount command is the daemon: pid {} but mountinfo says {}",
            child.id(),
            entry.line
        );
    }
    (child, cap)
}

fn foreground_signal_exits_zero(sig: i32, name: &str) {
    let s = Scene::new();
    s.file("a.txt");
    let (mut child, cap) = foreground(&s, &[]);
    // Still attached and serving.
    assert!(child.try_wait().unwrap().is_none(), "--foreground detached");
    assert_visible(&s, "a.txt");
    signal(child.id() as i32, sig);
    let status = wait_child(&mut child, Duration::from_secs(15));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        cleanup_mount(&s.mnt, None);
        panic!("--foreground daemon still running 15 s after {name}");
    };
    let mounted = is_mounted(&s.mnt);
    cleanup_mount(&s.mnt, None);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after {name}: {status}\nstderr:\n{}",
        cap.stderr()
    );
    assert!(!mounted, "still mounted after {name}");
    assert_listing(&s.mnt, &[]);
}

#[test]
fn foreground_stays_attached_and_sigterm_unmounts_with_exit_0() {
    foreground_signal_exits_zero(libc::SIGTERM, "SIGTERM");
}

#[test]
fn foreground_sigint_unmounts_with_exit_0() {
    foreground_signal_exits_zero(libc::SIGINT, "SIGINT");
}

// --- bad input --------------------------------------------------------------------------------

/// Runs `scopefs mount ARGS SOURCE MOUNTPOINT` expecting failure with `code`, exactly one line
/// on stderr starting `scopefs: `, and nothing mounted at MOUNTPOINT. Returns the line.
fn mount_fails(args: &[&str], src: &Path, mnt: &Path, code: i32) -> String {
    let mut cmd = scopefs();
    cmd.arg("mount").args(args).arg(src).arg(mnt);
    let desc = format!("{cmd:?}");
    let before = mounts_at(mnt).len();
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let after = mounts_at(mnt).len();
    if after > before {
        cleanup_mount(mnt, None);
    }
    assert_eq!(
        out.code(),
        Some(code),
        "{desc}: exit status {} (want {code})\nstderr:\n{}",
        out.status,
        out.stderr
    );
    assert!(
        after <= before,
        "{desc} failed but left a mount at {}",
        mnt.display()
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{desc}: stderr must be exactly one line, got:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.ends_with('\n'),
        "{desc}: the line is newline-terminated"
    );
    let line = lines[0].to_owned();
    assert!(
        line.starts_with("scopefs: ") && line.len() > "scopefs: ".len() + 10,
        "{desc}: the line should read `scopefs: <what and how to fix>`, got {line:?}"
    );
    line
}

/// A policy file that fails, checked through `mount -c FILE`.
fn bad_policy(toml: &str, must_contain: &[&str]) {
    let s = Scene::new();
    s.file("a.txt");
    let policy = s.policy(toml);
    let line = mount_fails(&["-c", policy.to_str().unwrap()], &s.src, &s.mnt, 2);
    for want in must_contain {
        assert!(line.contains(want), "error line lacks {want:?}: {line}");
    }
    assert_listing(&s.mnt, &[]);
}

#[test]
fn malformed_toml_is_exit_2() {
    bad_policy("[view]\nallow = [\"src/\"\n", &["policy.toml"]);
}

#[test]
fn wrong_type_is_exit_2_with_line_and_column() {
    bad_policy(
        "[view]\nhide = [\"*.log\"]\nallow = \"src/\"\n",
        &["policy.toml:3:"],
    );
}

#[test]
fn unknown_key_is_exit_2_with_line_and_column() {
    bad_policy(
        "[view]\nallow = [\"**\"]\nhidden = [\"x\"]\n",
        &["policy.toml:3:", "hidden"],
    );
}

#[test]
fn unknown_section_is_exit_2() {
    bad_policy("[viewz]\nallow = [\"**\"]\n", &["policy.toml:1:"]);
}

#[test]
fn pattern_with_dotdot_in_file_is_exit_2() {
    bad_policy("[view]\nhide = [\"src/../.env\"]\n", &["policy.toml:2:"]);
}

#[test]
fn pattern_with_dotdot_in_flag_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    mount_fails(&["--allow", "../other/"], &s.src, &s.mnt, 2);
    mount_fails(&["--hide", "a/../../b"], &s.src, &s.mnt, 2);
}

#[test]
fn absolute_pattern_is_exit_2() {
    // `/build` is an anchored gitignore line and valid; a pattern naming a host path (here
    // SOURCE's own absolute path, the usual mistake) is absolute and refused.
    let s = Scene::new();
    s.file("a.txt");
    let abs = format!("{}/a.txt", s.src.display());
    mount_fails(&["--hide", &abs], &s.src, &s.mnt, 2);
    let policy = s.policy(&format!("[view]\nallow = [{abs:?}]\n"));
    mount_fails(&["-c", policy.to_str().unwrap()], &s.src, &s.mnt, 2);
}

#[test]
fn missing_policy_file_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    let missing = s.base().join("nope.toml");
    mount_fails(&["-c", missing.to_str().unwrap()], &s.src, &s.mnt, 2);
}

#[test]
fn missing_source_is_exit_2() {
    let s = Scene::new();
    let missing = s.base().join("no-such-source");
    let line = mount_fails(&[], &missing, &s.mnt, 2);
    assert!(line.contains("no-such-source"), "names SOURCE: {line}");
}

#[test]
fn source_that_is_a_file_is_exit_2() {
    let s = Scene::new();
    let file = s.base().join("plain-file");
    fs::write(&file, b"x").unwrap();
    mount_fails(&[], &file, &s.mnt, 2);
}

#[test]
fn missing_mountpoint_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    let missing = s.base().join("no-such-mountpoint");
    let line = mount_fails(&[], &s.src, &missing, 2);
    assert!(
        line.contains("no-such-mountpoint"),
        "names MOUNTPOINT: {line}"
    );
    assert!(!missing.exists(), "the missing mountpoint was created");
}

#[test]
fn mountpoint_that_is_a_file_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    let file = s.base().join("mnt-file");
    fs::write(&file, b"x").unwrap();
    mount_fails(&[], &s.src, &file, 2);
    assert!(!is_mounted(&file));
}

#[test]
fn non_empty_mountpoint_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    fs::write(s.m("already-here"), b"x").unwrap();
    mount_fails(&[], &s.src, &s.mnt, 2);
    assert_listing(&s.mnt, &["already-here"]);
}

#[test]
fn mountpoint_inside_source_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    s.dir("sub/view");
    let line = mount_fails(&[], &s.src, &s.s("sub/view"), 2);
    assert!(
        line.contains("inside SOURCE"),
        "the line says the view would contain itself: {line}"
    );
    // The same place by another spelling: a symlink outside SOURCE that leads into it.
    let link = s.base().join("into-source");
    std::os::unix::fs::symlink(s.s("sub/view"), &link).unwrap();
    let line = mount_fails(&[], &s.src, &link, 2);
    assert!(line.contains("inside SOURCE"), "through a symlink: {line}");
    assert_not_mounted(&s.s("sub/view"), "MOUNTPOINT inside SOURCE");
}

#[test]
fn live_mountpoint_is_exit_2_and_the_first_mount_keeps_serving() {
    let s = Scene::new();
    s.file("a.txt");
    let m = s.mount(&[]);
    let other = Scene::new();
    other.file("b.txt");
    mount_fails(&[], &other.src, &s.mnt, 2);
    assert_eq!(
        mounts_at(&s.mnt).len(),
        1,
        "exactly one mount at MOUNTPOINT"
    );
    assert_listing(m.mnt(), &["a.txt"]);
    assert!(alive(m.pid));
}

#[test]
fn dead_mountpoint_is_exit_2() {
    let s = Scene::new();
    s.file("a.txt");
    let mut m = s.mount(&[]);
    m.kill();
    let line = mount_fails(&[], &s.src, &s.mnt, 2);
    eprintln!("dead mountpoint: {line}");
    assert_eq!(mounts_at(&s.mnt).len(), 1, "only the dead mount remains");
    drop(m);
    assert_not_mounted(&s.mnt, "after cleaning up the dead mount");
}

#[test]
fn missing_dev_fuse_is_exit_1_naming_dev_fuse() {
    let s = Scene::new();
    s.file("a.txt");
    let script = format!(
        "mount -t tmpfs none /dev && test ! -e /dev/fuse && exec {} mount {} {}",
        BIN,
        s.src.display(),
        s.mnt.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env_remove("RUST_LOG");
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert_not_mounted(&s.mnt, "mount without /dev/fuse");
    assert_eq!(
        out.code(),
        Some(1),
        "exit status without /dev/fuse: {}\nstderr:\n{}",
        out.status,
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{}", out.stderr);
    assert!(
        lines[0].starts_with("scopefs: ") && lines[0].contains("/dev/fuse"),
        "the line names /dev/fuse: {:?}",
        lines[0]
    );
}

#[test]
fn umount_of_something_not_mounted_fails_with_one_line() {
    let s = Scene::new();
    let mut cmd = scopefs();
    cmd.arg("umount").arg(&s.mnt);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "umount of a plain directory succeeded"
    );
    assert_eq!(out.stderr.lines().count(), 1, "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.starts_with("scopefs: "),
        "stderr: {}",
        out.stderr
    );
}

// --- --allow-other ------------------------------------------------------------------------------

/// Reads `path` as uid/gid 65534 with `cat`, returning whether it worked and its stderr.
fn cat_as_nobody(path: &Path) -> (bool, String, Vec<u8>) {
    let out = Command::new("cat")
        .arg(path)
        .uid(65534)
        .gid(65534)
        .env("LC_ALL", "C")
        .output()
        .expect("run cat as uid 65534");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.stdout,
    )
}

#[test]
fn allow_other_applies_kernel_permission_checks() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scene::new();
    s.open_to_others();
    let private: PathBuf = s.file_with("private.txt", b"root only\n");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    let public = s.file_with("public.txt", b"for everyone\n");
    fs::set_permissions(&public, fs::Permissions::from_mode(0o644)).unwrap();
    // The same checks on SOURCE itself, so the expectation is the kernel's own answer.
    assert!(
        !cat_as_nobody(&private).0,
        "uid 65534 reads a 0600 root file directly"
    );
    assert!(
        cat_as_nobody(&public).0,
        "uid 65534 cannot read 0644 directly"
    );

    let _m = s.mount(&["--allow-other"]);
    let (ok, err, _) = cat_as_nobody(&s.m("private.txt"));
    assert!(
        !ok,
        "uid 65534 read a 0600 root-owned file through the mount"
    );
    assert!(
        err.contains("Permission denied"),
        "reading a 0600 root file as uid 65534 should be EACCES, cat said: {err}"
    );
    let (ok, err, data) = cat_as_nobody(&s.m("public.txt"));
    assert!(
        ok,
        "uid 65534 could not read a 0644 file through the mount: {err}"
    );
    assert_eq!(data, b"for everyone\n");
    // Root still reads both.
    assert_eq!(fs::read(s.m("private.txt")).unwrap(), b"root only\n");
}

// --- more lifecycle -----------------------------------------------------------------------------

#[test]
fn relative_source_and_mountpoint_work() {
    let s = Scene::new();
    s.file("a.txt");
    s.file(".env");
    let mut cmd = scopefs();
    cmd.current_dir(s.base()).args(["mount", "src", "mnt"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let mounted = mounts_at(&s.mnt).pop();
    let result = std::panic::catch_unwind(|| {
        assert!(
            out.status.success(),
            "mount with relative paths: {}\n{}",
            out.status,
            out.stderr
        );
        assert!(mounted.is_some(), "mounted at the absolute MOUNTPOINT");
        assert_listing(&s.mnt, &["a.txt"]);
        assert_visible(&s, "a.txt");
    });
    let mut cmd = scopefs();
    cmd.current_dir(s.base()).args(["umount", "mnt"]);
    let umount = run_with_timeout(cmd, Duration::from_secs(30));
    cleanup_mount(&s.mnt, mounted.as_ref().map(daemon_pid));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(
        umount.status.success(),
        "umount with a relative path: {}\n{}",
        umount.status,
        umount.stderr
    );
}

/// Polls the captured stderr of a foreground daemon until a line contains `needle`; fails
/// after 30 s.
fn wait_for_line(cap: &Capture, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let err = cap.stderr();
        if let Some(line) = err.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with {needle:?} on the daemon's stderr within 30 s:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a foreground daemon with SIGTERM and asserts it exits 0 with nothing left mounted.
fn stop_foreground(s: &Scene, mut child: std::process::Child, cap: &Capture) {
    signal(child.id() as i32, libc::SIGTERM);
    let status = wait_child(&mut child, Duration::from_secs(30));
    let mounted = is_mounted(&s.mnt);
    cleanup_mount(&s.mnt, Some(child.id() as i32));
    let status = status.expect("the foreground daemon did not exit within 30 s of SIGTERM");
    assert!(status.success(), "exit {status}\n{}", cap.stderr());
    assert!(!mounted, "still mounted after SIGTERM");
}

#[test]
fn sighup_reloads_the_policy_and_keeps_it_when_the_file_is_invalid() {
    let s = Scene::new();
    s.file("a.txt");
    s.file("b.txt");
    s.file("c.txt");
    let policy = s.policy("[view]\nhide = [\"a.txt\"]\n");
    let (child, cap) = foreground(&s, &["-c", policy.to_str().unwrap()]);
    let pid = child.id() as i32;
    let checked = std::panic::catch_unwind(|| {
        assert_hidden(&s.mnt, "a.txt");
        assert_visible(&s, "b.txt");

        fs::write(&policy, "[view]\nhide = [\"b.txt\"]\n").unwrap();
        signal(pid, libc::SIGHUP);
        let reloaded = (0..600).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            fs::symlink_metadata(s.m("b.txt")).is_err()
                && fs::symlink_metadata(s.m("a.txt")).is_ok()
        });
        assert!(
            reloaded,
            "30 s after SIGHUP the new hide list is not in force"
        );
        assert_hidden(&s.mnt, "b.txt");
        assert_visible(&s, "a.txt");
        assert!(alive(pid), "the daemon survives SIGHUP");
        // A good reload says so, once.
        wait_for_line(&cap, "SIGHUP: the policy was reloaded and is in force");

        // An invalid file keeps the old policy, and the daemon says why.
        fs::write(&policy, "[view]\nhide = \"c.txt\"\nbogus = 1\n").unwrap();
        signal(pid, libc::SIGHUP);
        let line = wait_for_line(&cap, "SIGHUP: the policy was not reloaded");
        assert!(
            line.contains("policy.toml"),
            "the line names the file: {line}"
        );
        // Said once, as plain text (stderr is a file here, not a terminal).
        let said = cap.stderr();
        assert_eq!(
            said.matches("policy.toml").count(),
            1,
            "the refusal is reported once: {said}"
        );
        assert!(
            !said.contains('\u{1b}'),
            "no colour codes in a log: {said:?}"
        );
        assert!(
            alive(pid),
            "the daemon survives SIGHUP with an invalid file"
        );
        assert_hidden(&s.mnt, "b.txt");
        assert_visible(&s, "a.txt");
        assert_visible(&s, "c.txt");
    });
    stop_foreground(&s, child, &cap);
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
}

/// The write layer cannot change under a live mount: a reload that changes `writes.mode` is
/// refused as a whole (README, Decisions), and the rest of the new file is not put in force.
#[test]
fn sighup_that_changes_the_write_mode_is_refused() {
    let s = Scene::new();
    s.file("a.txt");
    s.file("b.txt");
    let overlay = s.base().join("overlay");
    let policy = s.policy("[view]\nhide = [\"a.txt\"]\n");
    let (child, cap) = foreground(&s, &["-c", policy.to_str().unwrap()]);
    let pid = child.id() as i32;
    let checked = std::panic::catch_unwind(|| {
        assert_hidden(&s.mnt, "a.txt");
        assert_errno(
            fs::write(s.m("new.txt"), b"x"),
            libc::EROFS,
            "write in deny mode",
        );

        fs::write(
            &policy,
            format!(
                "[view]\nhide = [\"b.txt\"]\n[writes]\nmode = \"overlay\"\noverlay = {:?}\n",
                overlay.display().to_string()
            ),
        )
        .unwrap();
        signal(pid, libc::SIGHUP);
        let line = wait_for_line(&cap, "SIGHUP: the policy was not reloaded");
        assert!(
            line.contains("writes.mode cannot change while mounted"),
            "the line says why: {line}"
        );
        assert!(alive(pid), "the daemon survives the refused reload");
        // The old policy, all of it, stays in force.
        assert_hidden(&s.mnt, "a.txt");
        assert_visible(&s, "b.txt");
        assert_errno(
            fs::write(s.m("new.txt"), b"x"),
            libc::EROFS,
            "write after the refused reload",
        );
        assert!(!overlay.exists(), "the refused reload made an overlay");
        assert!(!s.s("new.txt").exists());
    });
    stop_foreground(&s, child, &cap);
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
}
