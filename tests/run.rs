//! `scopefs run` through the binary: exit statuses, the working directory inside the view,
//! `SCOPEFS_VIEW`, signals, `--in-place`, the temporary overlay and its summary, and that
//! nothing is left mounted or on disk afterwards however the command ends.
//!
//! Every run gets `TMPDIR` pointing at a directory of its own test, so the temporary
//! mountpoint and overlay `run` creates land there: "nothing left" is "that directory is
//! empty and nothing is mounted under it", whatever other tests mount at the same time.

// Helpers outside #[test] functions state their expectations with unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use common::{Capture, Outcome, mountinfo, run_with_timeout, wait_child};

/// How long one `scopefs run` may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A SOURCE with a secret, a hidden-by-preset key and a subdirectory, plus a private TMPDIR
/// for `run` and an `out/` directory outside SOURCE for the command to leave results in.
struct Stage {
    _root: tempfile::TempDir,
    src: PathBuf,
    tmp: PathBuf,
    out: PathBuf,
}

impl Stage {
    fn new() -> Stage {
        common::require_fuse();
        let root = tempfile::Builder::new()
            .prefix("scopefs-run-test-")
            .tempdir()
            .unwrap();
        let base = fs::canonicalize(root.path()).unwrap();
        let src = base.join("src");
        let tmp = base.join("tmp");
        let out = base.join("out");
        for dir in [&src, &tmp, &out, &src.join("sub")] {
            fs::create_dir(dir).unwrap();
        }
        fs::write(src.join("README"), "the project\n").unwrap();
        fs::write(src.join(".env"), "TOKEN=secret\n").unwrap();
        fs::write(src.join("server.pem"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        fs::write(src.join("sub/notes.txt"), "notes\n").unwrap();
        Stage {
            _root: root,
            src,
            tmp,
            out,
        }
    }

    /// `scopefs run ARGS SOURCE -- sh -c SCRIPT`, from `cwd`, with TMPDIR set to the stage's.
    fn command(&self, cwd: &Path, args: &[&str], script: &str) -> Command {
        let mut cmd = common::scopefs();
        cmd.current_dir(cwd)
            .env("TMPDIR", &self.tmp)
            .env_remove("SCOPEFS_VIEW")
            .arg("run")
            .args(args)
            .arg(&self.src)
            .args(["--", "sh", "-c", script]);
        cmd
    }

    fn run(&self, args: &[&str], script: &str) -> Outcome {
        run_with_timeout(self.command(&self.out, args, script), RUN_TIMEOUT)
    }

    fn out_file(&self, name: &str) -> String {
        let path = self.out.join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Asserts `run` left nothing behind: no fuse.scopefs mount under the stage's TMPDIR and
    /// an empty TMPDIR (no `scopefs-run.*` directory).
    fn assert_clean(&self, context: &str) {
        let left: Vec<String> = mountinfo()
            .into_iter()
            .filter(|e| e.fstype == "fuse.scopefs" && e.mount_point.starts_with(&self.tmp))
            .map(|e| e.line)
            .collect();
        assert!(
            left.is_empty(),
            "{context}: mounts left under {}:\n{}",
            self.tmp.display(),
            left.join("\n")
        );
        let entries: Vec<PathBuf> = fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(entries.is_empty(), "{context}: left in TMPDIR: {entries:?}");
    }
}

/// Polls until `path` exists, failing the test after `timeout`.
fn wait_for_file(path: &Path, child: &mut Child, cap: &Capture) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "scopefs run ended ({status}) before {} appeared\nstderr: {}",
                path.display(),
                cap.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {RUN_TIMEOUT:?}\nstderr: {}",
            path.display(),
            cap.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // The writer may not have finished the line yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(path).unwrap_or_default().ends_with('\n') {
        assert!(
            Instant::now() < deadline,
            "{} stays incomplete",
            path.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn wait_run(child: &mut Child, cap: &Capture) -> std::process::ExitStatus {
    wait_child(child, RUN_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("scopefs run did not end\nstderr: {}", cap.stderr())
    })
}

/// The one mount of type fuse.scopefs under `dir`, while a run is in progress.
fn live_mount_under(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = mountinfo()
        .into_iter()
        .filter(|e| e.fstype == "fuse.scopefs" && e.mount_point.starts_with(dir))
        .map(|e| e.mount_point)
        .collect();
    assert_eq!(found.len(), 1, "one view mounted under {}", dir.display());
    found.into_iter().next().unwrap()
}

#[test]
fn exit_status_is_the_commands() {
    let stage = Stage::new();
    for (script, expected) in [("exit 0", 0), ("exit 7", 7), ("kill -9 $$", 137)] {
        let outcome = stage.run(&[], script);
        assert_eq!(
            outcome.code(),
            Some(expected),
            "`{script}`: stderr: {}",
            outcome.stderr
        );
        stage.assert_clean(script);
    }
}

#[test]
fn working_directory_maps_into_the_view_and_scopefs_view_is_set() {
    let stage = Stage::new();
    let script =
        "pwd -P > \"$OUT/pwd\"; echo \"$SCOPEFS_VIEW\" > \"$OUT/view\"; ls -a > \"$OUT/ls\"";

    // From SOURCE/sub: the command starts in the view's sub.
    let mut cmd = stage.command(&stage.src.join("sub"), &[], script);
    cmd.env("OUT", &stage.out);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    let view = PathBuf::from(stage.out_file("view").trim_end());
    let pwd = PathBuf::from(stage.out_file("pwd").trim_end());
    assert!(
        view.starts_with(&stage.tmp),
        "the temporary mountpoint {} is under TMPDIR {}",
        view.display(),
        stage.tmp.display()
    );
    assert_eq!(pwd, view.join("sub"), "pwd from SOURCE/sub");
    assert!(stage.out_file("ls").lines().any(|l| l == "notes.txt"));
    stage.assert_clean("run from SOURCE/sub");

    // From outside SOURCE: the view's root.
    let mut cmd = stage.command(&stage.out, &[], script);
    cmd.env("OUT", &stage.out);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    let view = PathBuf::from(stage.out_file("view").trim_end());
    assert_eq!(PathBuf::from(stage.out_file("pwd").trim_end()), view);
    let listed = stage.out_file("ls");
    assert!(
        listed.lines().any(|l| l == "README"),
        "root listing: {listed}"
    );
    assert!(
        !listed.lines().any(|l| l == ".env"),
        "root listing: {listed}"
    );
    stage.assert_clean("run from outside SOURCE");
}

#[test]
fn scopefs_view_names_the_mount_while_the_command_runs() {
    let stage = Stage::new();
    let outcome = stage.run(
        &[],
        "awk -v mp=\"$SCOPEFS_VIEW\" '$5 == mp { print $0 }' /proc/self/mountinfo",
    );
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    assert!(
        outcome.stdout.contains(" - fuse.scopefs "),
        "the command's SCOPEFS_VIEW is a fuse.scopefs mount: {}",
        outcome.stdout
    );
    stage.assert_clean("SCOPEFS_VIEW run");
}

#[test]
fn nothing_left_after_the_command_is_killed_from_outside() {
    let stage = Stage::new();
    let pid_file = stage.out.join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut cmd = stage.command(&stage.out, &[], &script);
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_for_file(&pid_file, &mut child, &cap);
    live_mount_under(&stage.tmp);

    // The command wrote its pid in its own PID namespace; kill it by its pid out here.
    let ns_pid: i32 = stage.out_file("pid").trim().parse().unwrap();
    let pid = host_pid(child.id(), ns_pid);
    common::signal(pid, libc::SIGKILL);
    let status = wait_run(&mut child, &cap);
    assert_eq!(status.code(), Some(137), "stderr: {}", cap.stderr());
    stage.assert_clean("command SIGKILLed");
}

/// The pid, as seen here, of the descendant of `ancestor` whose pid in its own (innermost)
/// PID namespace is `ns_pid` (the `NSpid:` line of /proc/PID/status lists both).
fn host_pid(ancestor: u32, ns_pid: i32) -> i32 {
    let status = |pid: &str| fs::read_to_string(format!("/proc/{pid}/status")).ok();
    let field = |text: &str, name: &str| -> Vec<i32> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let descends = |mut pid: i32| {
        while pid > 1 {
            if pid == i32::try_from(ancestor).unwrap() {
                return true;
            }
            pid = status(&pid.to_string())
                .and_then(|s| field(&s, "PPid:").first().copied())
                .unwrap_or(0);
        }
        false
    };
    let found: Vec<i32> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let nspid = field(&status(&name)?, "NSpid:");
            (nspid.len() > 1 && nspid.last() == Some(&ns_pid))
                .then(|| nspid.first().copied())
                .flatten()
        })
        .filter(|pid| descends(*pid))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one process of pid {ns_pid} in run's namespace: {found:?}"
    );
    found.into_iter().next().unwrap()
}

#[test]
fn sigterm_to_run_reaches_the_command_and_nothing_is_left() {
    let stage = Stage::new();
    let pid_file = stage.out.join("pid");
    let marker = stage.out.join("got-term");
    let script = format!(
        "trap 'echo TERM > \"{marker}\"; exit 3' TERM; echo $$ > '{pid}'; \
         while :; do sleep 0.05; done",
        marker = marker.display(),
        pid = pid_file.display()
    );
    let mut cmd = stage.command(&stage.out, &[], &script);
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_for_file(&pid_file, &mut child, &cap);
    live_mount_under(&stage.tmp);

    common::signal(i32::try_from(child.id()).unwrap(), libc::SIGTERM);
    let status = wait_run(&mut child, &cap);
    assert_eq!(
        fs::read_to_string(&marker).unwrap_or_default(),
        "TERM\n",
        "the command's trap ran; stderr: {}",
        cap.stderr()
    );
    assert_eq!(
        status.code(),
        Some(3),
        "run exits with the command's status; stderr: {}",
        cap.stderr()
    );
    stage.assert_clean("run SIGTERMed");
}

#[test]
fn sigint_to_run_ends_an_untrapping_command_with_130() {
    let stage = Stage::new();
    let pid_file = stage.out.join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut cmd = stage.command(&stage.out, &[], &script);
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_for_file(&pid_file, &mut child, &cap);

    common::signal(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    let status = wait_run(&mut child, &cap);
    assert_eq!(status.code(), Some(130), "stderr: {}", cap.stderr());
    stage.assert_clean("run SIGINTed");
}

#[test]
fn in_place_covers_source_for_the_command_only() {
    let stage = Stage::new();
    let src = stage.src.display().to_string();
    let out = stage.out.display().to_string();
    let script = format!(
        "ls -a '{src}' > '{out}/inside-ls'; \
         cat '{src}/.env' > /dev/null 2> '{out}/cat-err'; echo $? > '{out}/cat-rc'; \
         cat '{src}/README' > '{out}/readme'; pwd > '{out}/pwd'; \
         echo \"$SCOPEFS_VIEW\" > '{out}/view'; \
         echo ready > '{out}/ready'; \
         while [ ! -e '{out}/go' ]; do sleep 0.05; done"
    );
    let mut cmd = stage.command(&stage.src.join("sub"), &["--in-place"], &script);
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_for_file(&stage.out.join("ready"), &mut child, &cap);

    // Outside, during the run: the real directory, untouched and not covered.
    let mut names: Vec<String> = fs::read_dir(&stage.src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".env", "README", "server.pem", "sub"]);
    assert_eq!(
        fs::read_to_string(stage.src.join(".env")).unwrap(),
        "TOKEN=secret\n"
    );
    common::assert_not_mounted(&stage.src, "outside the command's namespace");
    live_mount_under(&stage.tmp);

    fs::write(stage.out.join("go"), "").unwrap();
    let status = wait_run(&mut child, &cap);
    assert_eq!(status.code(), Some(0), "stderr: {}", cap.stderr());

    // Inside: the view, at SOURCE's own path.
    let inside = stage.out_file("inside-ls");
    let inside: Vec<&str> = inside.lines().collect();
    assert_eq!(inside, [".", "..", "README", "sub"], "ls SOURCE inside");
    assert_eq!(stage.out_file("cat-rc").trim(), "1");
    let err = stage.out_file("cat-err");
    assert!(err.contains("No such file or directory"), "cat .env: {err}");
    assert_eq!(stage.out_file("readme"), "the project\n");
    assert_eq!(stage.out_file("pwd").trim_end(), format!("{src}/sub"));
    assert_eq!(stage.out_file("view").trim_end(), src);
    stage.assert_clean("--in-place");
}

/// fsync of files and directories, SEEK_DATA and poll work in the view as on a local file
/// system, read-only view included (its files are opened without the daemon), and `run`
/// prints nothing of its own beyond the overlay summary.
#[test]
fn fsync_seek_and_poll_work_and_run_stays_quiet() {
    let stage = Stage::new();
    let probe = "import os, select, sys\n\
                 fd = os.open(sys.argv[1], os.O_RDONLY)\n\
                 os.fsync(fd)\n\
                 print(os.lseek(fd, 0, os.SEEK_DATA))\n\
                 p = select.poll()\n\
                 p.register(fd, select.POLLIN)\n\
                 print(p.poll(0))";
    let deny = stage.run(
        &[],
        &format!(
            "cd \"$SCOPEFS_VIEW\" && sync README sub . && python3 -c '{probe}' README > {}/deny.txt",
            stage.out.display()
        ),
    );
    assert_eq!(deny.code(), Some(0), "deny view: stderr: {}", deny.stderr);
    assert_eq!(deny.stderr, "", "deny view: run printed something");
    assert_eq!(stage.out_file("deny.txt"), "0\n[(3, 1)]\n");
    let overlay = stage.run(
        &["--writes", "overlay"],
        &format!(
            "cd \"$SCOPEFS_VIEW\" && echo new > new.txt && sync new.txt README sub . \
             && python3 -c '{probe}' new.txt > {}/overlay.txt",
            stage.out.display()
        ),
    );
    assert_eq!(
        overlay.code(),
        Some(0),
        "overlay view: stderr: {}",
        overlay.stderr
    );
    assert_eq!(
        overlay.stderr,
        "scopefs: 1 change in the overlay: 1 added\nA new.txt\n\
         scopefs: discarded 1 change (keep them with --keep-overlay or --overlay DIR)\n",
        "overlay view: nothing but the summary on stderr"
    );
    assert_eq!(stage.out_file("overlay.txt"), "0\n[(3, 1)]\n");
    stage.assert_clean("fsync, seek and poll");
}

#[test]
fn temporary_overlay_is_removed_and_its_changes_summarised() {
    let stage = Stage::new();
    let outcome = stage.run(
        &["--writes", "overlay"],
        "cd \"$SCOPEFS_VIEW\" && echo new > new.txt",
    );
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    assert!(
        outcome.stderr.lines().any(|l| l == "A new.txt"),
        "summary on stderr: {}",
        outcome.stderr
    );
    assert!(
        !stage.src.join("new.txt").exists(),
        "SOURCE is never written"
    );
    stage.assert_clean("temporary overlay");
}

/// Many changes: counts by kind, the first 20 as `diff` lines, how many more, and that the
/// temporary overlay and its changes are gone.
#[test]
fn summary_counts_by_kind_and_lists_at_most_twenty_paths() {
    let stage = Stage::new();
    let outcome = stage.run(
        &["--writes", "overlay"],
        "cd \"$SCOPEFS_VIEW\" && for i in $(seq 10 34); do echo $i > f$i; done \
         && echo more >> README && rm sub/notes.txt",
    );
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(
        lines[0], "scopefs: 27 changes in the overlay: 25 added, 1 modified, 1 deleted",
        "{}",
        outcome.stderr
    );
    assert_eq!(lines.len(), 1 + 20 + 2, "{}", outcome.stderr);
    assert!(
        lines[1..21]
            .iter()
            .all(|l| l.starts_with("A ") || l.starts_with("M ") || l.starts_with("D ")),
        "{}",
        outcome.stderr
    );
    assert_eq!(lines[21], "… and 7 more");
    assert_eq!(
        lines[22],
        "scopefs: discarded 27 changes (keep them with --keep-overlay or --overlay DIR)"
    );
    stage.assert_clean("summary of many changes");
}

/// Ctrl-C ends the command; the summary still says what the overlay held and that it is gone.
#[test]
fn summary_after_ctrl_c_says_the_overlay_was_discarded() {
    let stage = Stage::new();
    let ready = stage.out.join("ready");
    let script = format!(
        "cd \"$SCOPEFS_VIEW\" && echo new > new.txt && echo $$ > '{}' && exec sleep 60",
        ready.display()
    );
    let mut cmd = stage.command(&stage.out, &["--writes", "overlay"], &script);
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_for_file(&ready, &mut child, &cap);
    common::signal(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    let status = wait_run(&mut child, &cap);
    assert_eq!(status.code(), Some(130), "stderr: {}", cap.stderr());
    assert_eq!(
        cap.stderr(),
        "scopefs: 1 change in the overlay: 1 added\nA new.txt\n\
         scopefs: discarded 1 change (keep them with --keep-overlay or --overlay DIR)\n"
    );
    stage.assert_clean("run interrupted");
}

/// An overlay given with --overlay stays, and the summary says where to review it.
#[test]
fn a_given_overlay_is_kept_and_named() {
    let stage = Stage::new();
    let overlay = stage.out.join("overlay");
    let outcome = stage.run(
        &["--overlay", overlay.to_str().unwrap()],
        "cd \"$SCOPEFS_VIEW\" && echo new > new.txt",
    );
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!(
            "scopefs: 1 change in the overlay: 1 added\nA new.txt\n\
             scopefs: the overlay is kept at {o} (review: scopefs diff {o})\n",
            o = overlay.display()
        )
    );
    assert!(overlay.join("upper/new.txt").exists());
    stage.assert_clean("given overlay");
}

#[test]
fn keep_overlay_prints_where_the_changes_are() {
    let stage = Stage::new();
    let outcome = stage.run(
        &["--writes", "overlay", "--keep-overlay"],
        "cd \"$SCOPEFS_VIEW\" && echo new > new.txt && rm sub/notes.txt",
    );
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert!(lines.contains(&"A new.txt"), "summary: {}", outcome.stderr);
    assert!(
        lines.contains(&"D sub/notes.txt"),
        "summary: {}",
        outcome.stderr
    );
    assert_eq!(
        lines[0], "scopefs: 2 changes in the overlay: 1 added, 1 deleted",
        "{}",
        outcome.stderr
    );
    let kept = lines
        .iter()
        .find_map(|l| l.strip_prefix("scopefs: the overlay is kept at "))
        .and_then(|l| l.split_once(" (review: scopefs diff "))
        .unwrap_or_else(|| panic!("no kept-overlay line: {}", outcome.stderr));
    assert_eq!(kept.1, format!("{})", kept.0), "{}", outcome.stderr);
    let kept = PathBuf::from(kept.0);
    assert!(
        kept.starts_with(&stage.tmp),
        "{} under TMPDIR",
        kept.display()
    );
    assert_eq!(
        fs::read_to_string(kept.join("upper/new.txt")).unwrap(),
        "new\n"
    );
    assert!(kept.join("upper/sub/.wh.notes.txt").exists());
    assert!(stage.src.join("sub/notes.txt").exists(), "SOURCE untouched");

    // The kept overlay is a normal one: `diff` reads it.
    let diff = run_with_timeout(
        {
            let mut cmd = common::scopefs();
            cmd.arg("diff").arg(&kept);
            cmd
        },
        RUN_TIMEOUT,
    );
    assert_eq!(diff.code(), Some(0), "diff stderr: {}", diff.stderr);
    assert!(
        diff.stdout
            .lines()
            .any(|l| l.starts_with('A') && l.ends_with("new.txt"))
    );

    // Nothing mounted, and no temporary mountpoint next to the kept overlay.
    let left: Vec<_> = mountinfo()
        .into_iter()
        .filter(|e| e.fstype == "fuse.scopefs" && e.mount_point.starts_with(&stage.tmp))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    let run_dir = kept.parent().unwrap();
    let mut inside: Vec<String> = fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["overlay"], "only the overlay is kept");
}

#[test]
fn mountpoint_option_is_used_and_left_in_place_empty() {
    let stage = Stage::new();
    let mnt = stage.out.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let outcome = stage.run(
        &["--mountpoint", mnt.to_str().unwrap()],
        "echo \"$SCOPEFS_VIEW\"; pwd -P; ls",
    );
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some(mnt.to_str().unwrap()));
    assert_eq!(lines.get(1).copied(), Some(mnt.to_str().unwrap()));
    assert!(lines.contains(&"README") && !lines.contains(&"server.pem"));
    common::assert_not_mounted(&mnt, "after run --mountpoint");
    assert!(mnt.is_dir(), "the caller's mountpoint stays");
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
    stage.assert_clean("--mountpoint");
}

#[test]
fn a_command_that_cannot_start_is_a_clear_failure_and_leaves_nothing() {
    let stage = Stage::new();
    let mut cmd = common::scopefs();
    cmd.current_dir(&stage.out)
        .env("TMPDIR", &stage.tmp)
        .args(["run"])
        .arg(&stage.src)
        .args(["--", "/nonexistent/program"]);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(
        outcome.code(),
        Some(127),
        "as env says it: {}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("/nonexistent/program"),
        "stderr names the command: {}",
        outcome.stderr
    );
    stage.assert_clean("command not found");

    // Found on no PATH entry: 127 too.
    let mut cmd = common::scopefs();
    cmd.current_dir(&stage.out)
        .env("TMPDIR", &stage.tmp)
        .args(["run"])
        .arg(&stage.src)
        .args(["--", "scopefs-no-such-command"]);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(outcome.code(), Some(127), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .starts_with("scopefs: cannot execute scopefs-no-such-command: No such file"),
        "{}",
        outcome.stderr
    );
    stage.assert_clean("command not on PATH");

    // A file that is not executable, and a directory: 126, as a shell or env says it.
    let script = stage.out.join("script.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    for program in [script.as_path(), stage.out.as_path()] {
        let mut cmd = common::scopefs();
        cmd.current_dir(&stage.out)
            .env("TMPDIR", &stage.tmp)
            .args(["run"])
            .arg(&stage.src)
            .arg("--")
            .arg(program);
        let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
        assert_eq!(
            outcome.code(),
            Some(126),
            "{}: {}",
            program.display(),
            outcome.stderr
        );
        assert!(
            outcome.stderr.contains("Permission denied"),
            "{}",
            outcome.stderr
        );
        stage.assert_clean("command not executable");
    }
}

/// The processes running a given (unique) command line, by scanning /proc.
fn processes_running(cmdline: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = cmdline
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .filter(|pid| common::alive(*pid))
        .collect()
}

/// The whole process tree ends with the command: a background process it leaves behind, even
/// one holding the view busy, is ended with it, and `run` unmounts and cleans up at once.
#[test]
fn a_process_the_command_leaves_behind_ends_with_it() {
    let stage = Stage::new();
    for (mode, args) in [("plain", &[][..]), ("in place", &["--in-place"][..])] {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // A unique duration names the straggler.
        let duration = format!("600.{nanos:09}");
        let script = format!(
            "cd \"$SCOPEFS_VIEW\" && (exec sleep {duration}) > /dev/null 2>&1 & \
             while [ ! -e /proc/$!/cwd ]; do sleep 0.01; done; echo left"
        );
        let start = Instant::now();
        let outcome = stage.run(args, &script);
        let took = start.elapsed();
        assert_eq!(
            outcome.code(),
            Some(0),
            "{mode}: stderr: {}",
            outcome.stderr
        );
        assert_eq!(outcome.stdout, "left\n", "{mode}");
        assert!(
            took < Duration::from_secs(30),
            "{mode}: run ended {took:?} after it started, not with the command"
        );
        assert_eq!(
            processes_running(&["sleep", &duration]),
            Vec::<i32>::new(),
            "{mode}: the background process outlived run"
        );
        stage.assert_clean(mode);
    }
}
