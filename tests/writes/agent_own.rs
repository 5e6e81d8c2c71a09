//! SPEC §3a through a real mount: in an overlay view what the agent makes is its own. Every
//! operation on a name SOURCE holds hidden behaves exactly as the same operation on a name
//! SOURCE lacks (same errno, same listing, no content of SOURCE's, no whiteout of SOURCE's
//! entry), and no `apply`, forced or not, writes over or deletes a hidden SOURCE entry.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

/// Pairs of names the default policy hides: SOURCE holds the first, not the second.
const FILE_PAIRS: &[(&str, &str)] = &[(".env", ".env.local"), ("deploy.pem", "other.pem")];
/// The same for directories.
const DIR_PAIRS: &[(&str, &str)] = &[(".ssh", ".aws")];

/// SOURCE with hidden entries (and a visible one), under the default policy plus an overlay.
fn rig() -> Rig {
    let r = Rig::new(Mode::Overlay);
    r.scene.file_with(".env", b"SECRET=1\n");
    r.scene.file_with("deploy.pem", b"-----BEGIN KEY-----\n");
    r.scene.file_with(".ssh/id_rsa", b"PRIVATE\n");
    r.scene.file_with("README.md", b"hello\n");
    r
}

fn overlay_args(r: &Rig) -> Vec<String> {
    vec!["--overlay".into(), r.overlay().display().to_string()]
}

/// What one step did: its outcome (errno name or "ok") and what the view then shows at the
/// name (type and content, or the errno of lstat).
fn step(view: &Path, rel: &str, result: std::io::Result<()>) -> String {
    let seen =
        describe(&view.join(rel)).unwrap_or_else(|e| format!("lstat: {}", outcome::<()>(&Err(e))));
    format!("{} / {seen}", outcome(&result))
}

/// Runs the same sequence of file operations on `rel` and returns what each step did.
fn file_steps(view: &Path, rel: &str) -> Vec<String> {
    let p = view.join(rel);
    let excl = |p: &Path| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
            .map(drop)
    };
    let mut out = vec![step(view, rel, fs::metadata(&p).map(drop))];
    out.push(step(view, rel, excl(&p)));
    out.push(step(view, rel, excl(&p)));
    out.push(step(
        view,
        rel,
        fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| f.write_all(b"mine\n")),
    ));
    out.push(format!("listed: {}", names(view).iter().any(|n| n == rel)));
    out.push(step(view, rel, fs::remove_file(&p)));
    out.push(step(view, rel, fs::remove_file(&p)));
    // Renamed onto the name, from a file of the agent's.
    fs::write(view.join("tmp-own"), b"moved\n").unwrap();
    out.push(step(view, rel, fs::rename(view.join("tmp-own"), &p)));
    out.push(step(view, rel, fs::remove_file(&p)));
    // A symlink of that name, pointing out of SOURCE.
    out.push(step(
        view,
        rel,
        std::os::unix::fs::symlink("/usr/bin/python3", &p),
    ));
    out.push(step(view, rel, fs::remove_file(&p)));
    out.push(format!(
        "listed at the end: {}",
        names(view).iter().any(|n| n == rel)
    ));
    out
}

fn dir_steps(view: &Path, rel: &str) -> Vec<String> {
    let p = view.join(rel);
    let mut out = vec![step(view, rel, fs::metadata(&p).map(drop))];
    out.push(step(view, rel, fs::create_dir(&p)));
    out.push(step(view, rel, fs::create_dir(&p)));
    out.push(format!("listing: {:?}", names(&p)));
    out.push(step(view, rel, fs::write(p.join("config"), b"Host x\n")));
    out.push(format!("listing: {:?}", names(&p)));
    out.push(step(view, rel, fs::remove_dir(&p)));
    out.push(step(view, rel, fs::remove_file(p.join("config"))));
    out.push(step(view, rel, fs::remove_dir(&p)));
    out.push(step(view, rel, fs::remove_dir(&p)));
    out
}

#[test]
fn a_name_source_holds_hidden_behaves_as_an_absent_one() {
    let r = rig();
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&overlay_args(&r));
    let mut problems = Vec::new();
    for (hidden, absent) in FILE_PAIRS {
        let (h, a) = (file_steps(m.mnt(), hidden), file_steps(m.mnt(), absent));
        if h != a {
            problems.push(format!(
                "{hidden} (hidden in SOURCE): {h:#?}\n{absent} (absent): {a:#?}"
            ));
        }
    }
    for (hidden, absent) in DIR_PAIRS {
        let (h, a) = (dir_steps(m.mnt(), hidden), dir_steps(m.mnt(), absent));
        if h != a {
            problems.push(format!(
                "{hidden}/ (hidden in SOURCE): {h:#?}\n{absent}/ (absent): {a:#?}"
            ));
        }
    }
    // The steps did something: the first create worked and read back the agent's own bytes.
    let h = file_steps(m.mnt(), ".env");
    assert!(
        h[1].starts_with("ok") && h[3].contains("mine"),
        "the agent could not make .env in the overlay: {h:#?}"
    );
    drop(m);
    for (hidden, _) in FILE_PAIRS.iter().chain(DIR_PAIRS) {
        let (dir, name) = hidden.rsplit_once('/').unwrap_or(("", hidden));
        let wh = r.upper(&format!("{dir}/.wh.{name}"));
        if exists(&wh) {
            problems.push(format!(
                "a whiteout of SOURCE's hidden {hidden} was left: {}",
                wh.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert_same_tree(&before, &tree_digest(&r.scene.src), "agent's own entries");
}

#[test]
fn what_the_agent_makes_is_visible_whatever_its_name_or_target() {
    let r = rig();
    let m = r.mount(&overlay_args(&r));
    for (rel, data) in [
        ("cacert.pem", &b"CERT\n"[..]),
        (".github/workflows/ci.yml", b"on: push\n"),
        ("sub/.git/hooks/pre-commit", b"#!/bin/sh\n"),
        (".vscode/settings.json", b"{}\n"),
    ] {
        let p = m.m(rel);
        fs::create_dir_all(p.parent().unwrap())
            .unwrap_or_else(|e| panic!("mkdir -p for {rel}: {e}"));
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        assert_eq!(
            fs::read(&p).unwrap_or_else(|e| panic!("read {rel}: {e}")),
            data,
            "{rel}"
        );
        let parent = p.parent().unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(names(parent).contains(&name), "{rel} not listed");
    }
    std::os::unix::fs::symlink("/usr/bin/python3", m.m("python3")).expect("absolute symlink");
    assert_eq!(
        fs::read_link(m.m("python3")).unwrap(),
        Path::new("/usr/bin/python3")
    );
    // SOURCE's hidden entries stay hidden.
    assert_hidden(m.mnt(), ".env");
    assert_hidden(m.mnt(), ".ssh/id_rsa");
}

fn apply(r: &Rig, extra: &[&str]) -> Outcome {
    let mut cmd = scopefs();
    cmd.arg("apply").arg(r.overlay()).args(extra);
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[test]
fn apply_never_writes_over_or_deletes_a_hidden_source_entry() {
    let r = rig();
    r.scene.file_with("conf/a.txt", b"a\n");
    r.scene.file_with("conf/.env", b"CONF_SECRET=1\n");
    {
        let m = r.mount(&overlay_args(&r));
        fs::write(m.m(".env"), b"AGENT=1\n").expect("the agent's own .env");
        fs::write(m.m(".env.local"), b"LOCAL=1\n").expect("a new .env.local");
        fs::create_dir(m.m(".ssh")).expect("the agent's own .ssh/");
        fs::write(m.m(".ssh/config"), b"Host x\n").expect("the agent's own .ssh/config");
        // conf/ looks empty once a.txt is gone: the agent deletes it, .env and all in SOURCE.
        fs::remove_file(m.m("conf/a.txt")).unwrap();
        fs::remove_dir(m.m("conf")).expect("rmdir of a directory holding only hidden entries");
    }
    let plain = apply(&r, &[]);
    assert_eq!(
        plain.code(),
        Some(3),
        "apply without --force: {}",
        plain.stderr
    );
    for path in [".env", ".ssh/config", "conf/.env"] {
        assert!(
            plain.stderr.contains(path) && plain.stderr.contains("view hid"),
            "apply does not report {path} as a hidden entry's conflict:\n{}",
            plain.stderr
        );
    }
    let forced = apply(&r, &["--force"]);
    assert_eq!(forced.code(), Some(0), "apply --force: {}", forced.stderr);
    assert_eq!(fs::read(r.scene.s(".env")).unwrap(), b"SECRET=1\n");
    assert_eq!(fs::read(r.scene.s(".ssh/id_rsa")).unwrap(), b"PRIVATE\n");
    assert!(
        !exists(&r.scene.s(".ssh/config")),
        ".ssh/config was written into SOURCE's .ssh/"
    );
    assert_eq!(
        fs::read(r.scene.s("conf/.env")).unwrap(),
        b"CONF_SECRET=1\n"
    );
    assert_eq!(fs::read(r.scene.s(".env.local")).unwrap(), b"LOCAL=1\n");
    // The deletion of conf/ would take conf/.env with it: it is withheld as a whole.
    assert!(exists(&r.scene.s("conf/a.txt")), "conf/ was partly deleted");
    // What was withheld stays in the overlay; a second forced apply still leaves it alone.
    assert_eq!(fs::read(r.upper(".env")).unwrap(), b"AGENT=1\n");
    let again = apply(&r, &["--force"]);
    assert_eq!(
        again.code(),
        Some(0),
        "second apply --force: {}",
        again.stderr
    );
    assert_eq!(fs::read(r.scene.s(".env")).unwrap(), b"SECRET=1\n");
    assert_eq!(
        fs::read(r.scene.s("conf/.env")).unwrap(),
        b"CONF_SECRET=1\n"
    );
}
