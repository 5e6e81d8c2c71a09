//! `scopefs status` and `scopefs reload` on real mounts: a live view is listed with what it is
//! (source, mode, overlay and its changes, policy, daemon, refusals) and forgotten once
//! unmounted or once its daemon is gone; `reload` checks the file first, then says whether the
//! daemon put the new policy in force. Other tests' views are live meanwhile, so each test looks
//! at its own mountpoint only.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

const TIMEOUT: Duration = Duration::from_secs(30);

/// `scopefs status --json MOUNTPOINT`: the one view there (the command must succeed).
fn status_of(mnt: &Path) -> serde_json::Value {
    let mut cmd = scopefs();
    cmd.args(["status", "--json"]).arg(mnt);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(
        out.code(),
        Some(0),
        "status {}: {}",
        mnt.display(),
        out.stderr
    );
    let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let views = all.as_array().unwrap();
    assert_eq!(views.len(), 1, "{}", out.stdout);
    views[0].clone()
}

/// Whether `scopefs status --json` (every view) lists `mnt`.
fn listed(mnt: &Path) -> bool {
    let mut cmd = scopefs();
    cmd.args(["status", "--json"]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.code(), Some(0), "status: {}", out.stderr);
    let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .any(|v| v["mountpoint"].as_str() == mnt.to_str())
}

/// Polls `status` of `mnt` until `ready` holds for it (the daemon writes its counts every
/// second).
fn status_until(
    mnt: &Path,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let view = status_of(mnt);
        if ready(&view) {
            return view;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "status never showed {what}: {view:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_lists_a_live_view_and_forgets_it_after_umount() {
    let s = Scene::new();
    s.file("a.txt");
    s.file(".env");
    s.dir("sub");
    let overlay = s.base().join("overlay");
    let policy = s.policy("[writes]\nmode = \"overlay\"\nwritable = [\"/sub/\"]\n");
    let m = s.mount(&[
        "-c",
        policy.to_str().unwrap(),
        "--overlay",
        overlay.to_str().unwrap(),
    ]);
    // Two refusals (a hidden name asked for, a write outside the writable paths), one change.
    assert!(fs::read(m.m(".env")).is_err());
    assert!(fs::write(m.m("a.txt"), "x").is_err());
    fs::write(m.m("sub/new.txt"), "new\n").unwrap();

    let view = status_until(m.mnt(), "two refusals", |v| v["denied"].as_u64() >= Some(2));
    assert_eq!(view["mountpoint"].as_str(), s.mnt.to_str());
    assert_eq!(view["source"].as_str(), s.src.to_str());
    assert_eq!(view["write_mode"], "overlay");
    assert_eq!(view["overlay"].as_str(), overlay.to_str());
    assert_eq!(view["overlay_changes"], 1, "{view:#}");
    assert_eq!(
        view["policy"].as_str(),
        fs::canonicalize(&policy).unwrap().to_str()
    );
    assert_eq!(view["pid"].as_i64(), Some(i64::from(m.pid)), "{view:#}");
    assert!(view["uptime_seconds"].as_u64().is_some(), "{view:#}");
    assert_eq!(view["private"], false);

    // The text form says the same, a block per view.
    let mut cmd = scopefs();
    cmd.arg("status").arg(m.mnt());
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let text = out.stdout;
    assert!(
        text.starts_with(&format!("{}  (pid {}, up ", s.mnt.display(), m.pid)),
        "{text}"
    );
    for line in [
        format!("  source   {}", s.src.display()),
        format!("  writes   overlay {}: 1 change", overlay.display()),
    ] {
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(listed(m.mnt()), "listed among every view");

    drop(m);
    assert!(!listed(&s.mnt), "gone once unmounted");
    let mut cmd = scopefs();
    cmd.arg("status").arg(&s.mnt);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.code(), Some(2), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("is not a live scopefs view of this user; `scopefs status` lists them"),
        "{}",
        out.stderr
    );
}

/// A daemon killed without unmounting leaves its state file behind; `status` does not show it.
#[test]
fn status_does_not_show_a_view_whose_daemon_died() {
    let s = Scene::new();
    s.file("a.txt");
    let mut m = s.mount(&[]);
    assert!(listed(m.mnt()));
    let state = Path::new("/run/scopefs").join(format!("{}.json", m.pid));
    assert!(
        state.exists(),
        "{} is the view's state file",
        state.display()
    );
    m.kill();
    assert!(!listed(&s.mnt), "a dead daemon's view is not listed");
    assert!(!state.exists(), "its stale state file was removed");
}

#[test]
fn reload_applies_a_valid_policy_and_says_so() {
    let s = Scene::new();
    s.file("a.txt");
    s.file("b.log");
    let policy = s.policy("[view]\nhide = []\n");
    let m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert!(m.m("b.log").exists());

    fs::write(&policy, "[view]\nhide = [\"*.log\"]\n").unwrap();
    let mut cmd = scopefs();
    cmd.arg("reload").arg(m.mnt());
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "reloaded {}: the policy of {} is in force\n",
            m.mnt().display(),
            fs::canonicalize(&policy).unwrap().display()
        )
    );
    assert!(!m.m("b.log").exists(), "the new policy hides it at once");
    let view = status_of(m.mnt());
    assert_eq!(view["reloads"], 1, "{view:#}");
    assert_eq!(view["last_reload"]["applied"], true, "{view:#}");
}

#[test]
fn reload_refuses_an_invalid_file_without_signalling() {
    let s = Scene::new();
    s.file("a.txt");
    let policy = s.policy("[view]\nhide = [\"*.log\"]\n");
    let m = s.mount(&["-c", policy.to_str().unwrap()]);
    fs::write(&policy, "[view]\nhide = [\"*.log\"]\nhid = [\"x\"]\n").unwrap();
    let mut cmd = scopefs();
    cmd.arg("reload").arg(m.mnt());
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.code(), Some(2), "{}", out.stdout);
    let file = fs::canonicalize(&policy).unwrap();
    assert!(
        out.stderr
            .starts_with(&format!("{}:3:1: unknown key `hid`", file.display())),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the daemon was not signalled and keeps its policy"),
        "{}",
        out.stderr
    );
    assert_eq!(status_of(m.mnt())["reloads"], 0, "the daemon was not asked");
}

#[test]
fn reload_says_why_the_daemon_kept_its_policy() {
    let s = Scene::new();
    s.file("a.txt");
    let overlay = s.base().join("overlay");
    let policy = s.policy(&format!(
        "[writes]\nmode = \"overlay\"\noverlay = \"{}\"\n",
        overlay.display()
    ));
    let m = s.mount(&["-c", policy.to_str().unwrap()]);
    // Valid on its own, but a live view cannot change its write mode.
    fs::write(&policy, "[writes]\nmode = \"direct\"\n").unwrap();
    let mut cmd = scopefs();
    cmd.arg("reload").arg(m.mnt());
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.code(), Some(2), "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "{} keeps its old policy: writes.mode cannot change while mounted",
            m.mnt().display()
        )),
        "{}",
        out.stderr
    );
    let view = status_of(m.mnt());
    assert_eq!(view["last_reload"]["applied"], false, "{view:#}");
}
