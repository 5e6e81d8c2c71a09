//! Everyday agent work in a view, with real tools and no network (SPEC §3a): SOURCE is a git
//! repository with a tracked `.env` and `deploy.pem` (hidden by the default policy), mounted
//! with the default policy plus `--overlay` (or read-only, for the local clone). After each
//! workload: SOURCE is unchanged, its hidden entries are still absent in the view, and `diff`
//! lists (and flags) what the tool made. Needs root, /dev/fuse, git, python3 with venv, npm,
//! tar and cargo; fails loudly when one is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// How long one tool may take: generous, the machine is shared.
const TOOL_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `cmd` (a program and its arguments) in `dir` with `env`, failing the test with its
/// output unless it exits 0; returns stdout.
fn run(dir: &Path, cmd: &[&str], env: &[(&str, &Path)]) -> String {
    let mut c = Command::new(cmd[0]);
    c.args(&cmd[1..]).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.com")
        .env("GIT_COMMITTER_NAME", "Agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.com");
    let out = run_with_timeout(c, TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd:?} in {}: {}\nstdout:\n{}\nstderr:\n{}",
        dir.display(),
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// A scene whose SOURCE is a git repository with a tracked `.env` and `deploy.pem`, and a
/// home directory for the tools outside SOURCE and the view.
struct Work {
    scene: Scene,
    home: PathBuf,
}

impl Work {
    fn new() -> Work {
        let scene = Scene::new();
        let home = scene.base().join("home");
        fs::create_dir(&home).unwrap();
        let w = Work { scene, home };
        w.scene.file_with("README.md", b"# project\n");
        w.scene.file_with("src/main.py", b"print('hi')\n");
        w.scene.file_with(".env", b"API_KEY=hunter2\n");
        w.scene
            .file_with("deploy.pem", b"-----BEGIN PRIVATE KEY-----\n");
        w.git(&w.scene.src, &["init", "-q", "-b", "main"]);
        w.git(&w.scene.src, &["add", "-A"]);
        w.git(&w.scene.src, &["commit", "-q", "-m", "init"]);
        w
    }

    fn env(&self) -> Vec<(&'static str, &Path)> {
        vec![("HOME", self.home.as_path())]
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = vec!["git"];
        cmd.extend_from_slice(args);
        run(dir, &cmd, &self.env())
    }

    fn overlay(&self) -> PathBuf {
        self.scene.base().join("overlay")
    }

    fn mount_overlay(&self) -> Mounted<'_> {
        self.scene
            .mount(&["--overlay", self.overlay().to_str().unwrap()])
    }

    /// `scopefs diff --json` of the overlay: (op, path, reasons) per change.
    fn diff(&self) -> Vec<(String, String, Vec<String>)> {
        let mut cmd = scopefs();
        cmd.arg("diff").arg("--json").arg(self.overlay());
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "scopefs diff --json: {}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("diff --json");
        json.as_array()
            .expect("an array")
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                let reasons = c["reasons"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                (s("op"), s("path"), reasons)
            })
            .collect()
    }

    /// The diff summarises the repository at `path` (its `.git`) in one entry, flagged `flag`
    /// (its hooks and config are written in the overlay, and reviewed).
    fn assert_repository(&self, diff: &[(String, String, Vec<String>)], path: &str, flag: &str) {
        let found = diff.iter().find(|(op, p, _)| op == "G" && p == path);
        let Some((_, _, reasons)) = found else {
            panic!(
                "diff lacks G {path}: {:?}",
                diff.iter().map(|c| &c.1).collect::<Vec<_>>()
            );
        };
        assert!(
            reasons.iter().any(|r| r == flag),
            "G {path} is not flagged {flag}: {reasons:?}"
        );
    }

    /// The diff holds an addition at `path`, flagged `flag` when given.
    fn assert_added(&self, diff: &[(String, String, Vec<String>)], path: &str, flag: Option<&str>) {
        let found = diff.iter().find(|(op, p, _)| op == "A" && p == path);
        let Some((_, _, reasons)) = found else {
            panic!(
                "diff lacks A {path}: {:?}",
                diff.iter().map(|c| &c.1).collect::<Vec<_>>()
            );
        };
        if let Some(flag) = flag {
            assert!(
                reasons.iter().any(|r| r == flag),
                "A {path} is not flagged {flag}: {reasons:?}"
            );
        }
    }

    /// SOURCE is as it was, and its hidden entries are still absent in the view at `mnt`.
    fn assert_source_kept(
        &self,
        before: &std::collections::BTreeMap<Vec<u8>, String>,
        mnt: &Path,
        what: &str,
    ) {
        assert_hidden(mnt, ".env");
        assert_hidden(mnt, "deploy.pem");
        assert_same_tree(before, &tree_digest(&self.scene.src), what);
    }
}

#[test]
fn git_init_and_commit_in_a_subdirectory() {
    let w = Work::new();
    let before = tree_digest(&w.scene.src);
    let m = w.mount_overlay();
    let sub = m.m("sub");
    fs::create_dir(&sub).unwrap();
    w.git(&sub, &["init", "-q", "-b", "main"]);
    fs::write(sub.join("a.txt"), b"a\n").unwrap();
    w.git(&sub, &["add", "a.txt"]);
    w.git(&sub, &["commit", "-q", "-m", "first"]);
    assert_eq!(w.git(&sub, &["log", "--format=%s"]).trim(), "first");
    assert_eq!(w.git(&sub, &["status", "--porcelain"]), "");
    w.assert_source_kept(&before, m.mnt(), "git init");
    drop(m);
    let diff = w.diff();
    w.assert_added(&diff, "sub/a.txt", None);
    w.assert_repository(&diff, "sub/.git", "exec-config");
    assert_same_tree(&before, &tree_digest(&w.scene.src), "git init, unmounted");
}

#[test]
fn git_clone_from_a_local_path() {
    let w = Work::new();
    let upstream = w.scene.base().join("upstream");
    fs::create_dir(&upstream).unwrap();
    w.git(&upstream, &["init", "-q", "-b", "main"]);
    fs::write(upstream.join("lib.rs"), b"pub fn f() {}\n").unwrap();
    fs::create_dir_all(upstream.join(".github/workflows")).unwrap();
    fs::write(upstream.join(".github/workflows/ci.yml"), b"on: push\n").unwrap();
    fs::write(upstream.join("test-cert.pem"), b"CERT\n").unwrap();
    w.git(&upstream, &["add", "-A"]);
    w.git(&upstream, &["commit", "-q", "-m", "upstream"]);
    let before = tree_digest(&w.scene.src);
    let m = w.mount_overlay();
    w.git(m.mnt(), &["clone", "-q", upstream.to_str().unwrap(), "x"]);
    let x = m.m("x");
    assert_eq!(fs::read(x.join("test-cert.pem")).unwrap(), b"CERT\n");
    assert_eq!(w.git(&x, &["status", "--porcelain"]), "");
    assert_eq!(w.git(&x, &["log", "--format=%s"]).trim(), "upstream");
    w.assert_source_kept(&before, m.mnt(), "git clone");
    drop(m);
    let diff = w.diff();
    w.assert_added(&diff, "x/lib.rs", None);
    w.assert_added(&diff, "x/.github/workflows/ci.yml", Some("exec-config"));
    w.assert_added(&diff, "x/test-cert.pem", Some("hidden-name"));
}

/// git hardlinks the objects of a local clone: SOURCE's objects have a second link outside
/// SOURCE, which the default `hardlinks = "hide"` does not count.
#[test]
fn git_in_a_read_only_view_of_a_local_clone() {
    let w = Work::new();
    let clone = w.scene.base().join("clone");
    w.git(
        &w.scene.base(),
        &[
            "clone",
            "-q",
            "--local",
            w.scene.src.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    // The clone's objects are hardlinks of SOURCE's (same file system).
    let linked = walk_files(&clone.join(".git/objects")).iter().any(|f| {
        fs::metadata(f)
            .map(|m| std::os::unix::fs::MetadataExt::nlink(&m) > 1)
            .unwrap_or(false)
    });
    assert!(
        linked,
        "git clone --local made no hardlinks; the test would prove nothing"
    );
    let scene = Scene::new();
    let mnt = scene.mnt.clone();
    let mut cmd = scopefs();
    cmd.arg("mount").arg(&clone).arg(&mnt);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "mount the clone: {}", out.stderr);
    let guard = MountGuard(mnt.clone());
    assert_eq!(w.git(&mnt, &["log", "--format=%s"]).trim(), "init");
    let status = w.git(&mnt, &["status", "--porcelain"]);
    // The hidden tracked files show as deleted; nothing else changed.
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(
        lines,
        [" D .env", " D deploy.pem"],
        "git status in the view"
    );
    assert_hidden(&mnt, ".env");
    drop(guard);
}

/// Unmounts a view mounted by hand when dropped.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let mut cmd = scopefs();
        cmd.arg("umount").arg(&self.0);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        if !out.status.success() {
            cleanup_mount(&self.0, None);
        }
    }
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A wheel of a package that carries a certificate bundle, as certifi does, built by hand
/// (a wheel is a zip with metadata) so nothing is fetched.
fn wheel(dir: &Path) -> PathBuf {
    let path = dir.join("certbundle-1.0-py3-none-any.whl");
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "certbundle/__init__.py": b"def where():\n    return __file__.replace('__init__.py', 'cacert.pem')\n",
    "certbundle/cacert.pem": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "certbundle-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: certbundle\nVersion: 1.0\n",
    "certbundle-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("certbundle-1.0.dist-info/RECORD,,")
    z.writestr("certbundle-1.0.dist-info/RECORD", "\n".join(record) + "\n")
"#;
    run(dir, &["python3", "-c", script, path.to_str().unwrap()], &[]);
    path
}

#[test]
fn python_venv_and_an_offline_pip_install_of_a_package_with_a_pem() {
    let w = Work::new();
    let whl = wheel(&w.scene.base());
    let before = tree_digest(&w.scene.src);
    let m = w.mount_overlay();
    let env = w.env();
    run(m.mnt(), &["python3", "-m", "venv", ".venv"], &env);
    let py = m.m(".venv/bin/python");
    run(
        m.mnt(),
        &[
            py.to_str().unwrap(),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--disable-pip-version-check",
            whl.to_str().unwrap(),
        ],
        &env,
    );
    let bundle = run(
        m.mnt(),
        &[
            py.to_str().unwrap(),
            "-c",
            "import certbundle; print(open(certbundle.where()).read())",
        ],
        &env,
    );
    assert!(bundle.contains("BEGIN CERTIFICATE"), "{bundle}");
    w.assert_source_kept(&before, m.mnt(), "venv and pip");
    drop(m);
    let diff = w.diff();
    w.assert_added(&diff, ".venv/pyvenv.cfg", None);
    let pem = diff.iter().any(|(op, p, _)| {
        op == "A" && p.starts_with(".venv/lib/") && p.ends_with("certbundle/cacert.pem")
    });
    assert!(pem, "diff lacks the installed cacert.pem");
    // The venv's interpreter is a symlink out of SOURCE, flagged.
    let python = diff
        .iter()
        .find(|(_, p, _)| p == ".venv/bin/python")
        .expect("A .venv/bin/python");
    assert!(python.2.iter().any(|r| r == "symlink"), "{python:?}");
}

#[test]
fn npm_install_of_a_local_tarball_with_a_pem_and_a_workflow() {
    let w = Work::new();
    let pkg = w.scene.base().join("pkg");
    fs::create_dir_all(pkg.join(".github/workflows")).unwrap();
    fs::create_dir_all(pkg.join("test")).unwrap();
    fs::write(
        pkg.join("package.json"),
        br#"{"name":"certpkg","version":"1.0.0","main":"index.js"}"#,
    )
    .unwrap();
    fs::write(pkg.join("index.js"), b"module.exports = 1;\n").unwrap();
    fs::write(pkg.join("test/key.pem"), b"-----BEGIN PRIVATE KEY-----\n").unwrap();
    fs::write(pkg.join(".github/workflows/ci.yml"), b"on: push\n").unwrap();
    let env = vec![
        ("HOME", w.home.as_path()),
        ("npm_config_cache", w.home.as_path()),
    ];
    let packed = run(
        &pkg,
        &[
            "npm",
            "pack",
            "--silent",
            "--pack-destination",
            w.scene.base().to_str().unwrap(),
        ],
        &env,
    );
    let tarball = w.scene.base().join(packed.trim());
    assert!(tarball.is_file(), "npm pack made no {}", tarball.display());
    let before = tree_digest(&w.scene.src);
    let m = w.mount_overlay();
    let app = m.m("app");
    fs::create_dir(&app).unwrap();
    fs::write(
        app.join("package.json"),
        br#"{"name":"app","version":"1.0.0"}"#,
    )
    .unwrap();
    run(
        &app,
        &[
            "npm",
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            tarball.to_str().unwrap(),
        ],
        &env,
    );
    let installed = app.join("node_modules/certpkg");
    assert!(
        installed.join("test/key.pem").is_file(),
        "key.pem not installed"
    );
    assert!(
        installed.join(".github/workflows/ci.yml").is_file(),
        "ci.yml not installed"
    );
    w.assert_source_kept(&before, m.mnt(), "npm install");
    drop(m);
    let diff = w.diff();
    w.assert_added(
        &diff,
        "app/node_modules/certpkg/test/key.pem",
        Some("hidden-name"),
    );
    w.assert_added(
        &diff,
        "app/node_modules/certpkg/.github/workflows/ci.yml",
        Some("exec-config"),
    );
}

#[test]
fn cargo_new_and_an_offline_build() {
    let w = Work::new();
    let before = tree_digest(&w.scene.src);
    let m = w.mount_overlay();
    let cargo_home = w.home.join("cargo");
    fs::create_dir(&cargo_home).unwrap();
    let env = vec![
        ("HOME", w.home.as_path()),
        ("CARGO_HOME", cargo_home.as_path()),
    ];
    // `--vcs git`: cargo would not start a repository inside SOURCE's own otherwise.
    run(m.mnt(), &["cargo", "new", "-q", "--vcs", "git", "x"], &env);
    run(&m.m("x"), &["cargo", "build", "-q", "--offline"], &env);
    let out = run(&m.m("x"), &["./target/debug/x"], &env);
    assert_eq!(out, "Hello, world!\n");
    w.assert_source_kept(&before, m.mnt(), "cargo new and build");
    drop(m);
    let diff = w.diff();
    w.assert_added(&diff, "x/Cargo.toml", None);
    w.assert_added(&diff, "x/src/main.rs", None);
    w.assert_repository(&diff, "x/.git", "exec-config");
}

#[test]
fn tar_x_of_a_vendored_tree_at_the_view_root() {
    let w = Work::new();
    let tree = w.scene.base().join("vendored");
    for (rel, data) in [
        ("vendor/rustls/tests/data/end.key", &b"KEY\n"[..]),
        ("vendor/rustls/tests/data/ca.pem", b"CERT\n"),
        ("vendor/rustls/.github/workflows/build.yml", b"on: push\n"),
        ("vendor/rustls/.vscode/settings.json", b"{}\n"),
        ("vendor/rustls/src/lib.rs", b"pub fn f() {}\n"),
    ] {
        let p = tree.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }
    let archive = w.scene.base().join("vendored.tar");
    // `-C tree .`: the archive holds `./` itself, so tar sets the view root's mode and times.
    run(
        &w.scene.base(),
        &[
            "tar",
            "cf",
            archive.to_str().unwrap(),
            "-C",
            tree.to_str().unwrap(),
            ".",
        ],
        &[],
    );
    let before = tree_digest(&w.scene.src);
    let m = w.mount_overlay();
    run(
        &w.scene.base(),
        &[
            "tar",
            "xf",
            archive.to_str().unwrap(),
            "-C",
            m.mnt().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        fs::read(m.m("vendor/rustls/tests/data/end.key")).unwrap(),
        b"KEY\n"
    );
    w.assert_source_kept(&before, m.mnt(), "tar x");
    drop(m);
    let diff = w.diff();
    w.assert_added(
        &diff,
        "vendor/rustls/tests/data/ca.pem",
        Some("hidden-name"),
    );
    w.assert_added(
        &diff,
        "vendor/rustls/.github/workflows/build.yml",
        Some("exec-config"),
    );
    w.assert_added(
        &diff,
        "vendor/rustls/.vscode/settings.json",
        Some("exec-config"),
    );
}
