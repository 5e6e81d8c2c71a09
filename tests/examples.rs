//! The examples under examples/ work as README says: the annotated policies check and mount,
//! the container entrypoint serves a view and cleans up (run here outside a container), the
//! shell harness checks and always cleans up, and the LangChain agent's file tools cannot read
//! `.env` while its write lands in the overlay.
//!
//! Every run gets its own TMPDIR, so "nothing left" means that directory is empty and nothing
//! is mounted under it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{BIN, Capture, Outcome, mountinfo, run_with_timeout, wait_child};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Creating the virtualenv downloads LangChain from PyPI on the first run.
const LANGCHAIN_TIMEOUT: Duration = Duration::from_secs(900);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(rel: &str) -> PathBuf {
    repo().join("examples").join(rel)
}

const POLICIES: [&str; 4] = [
    "policy.toml",
    "policies/coding-agent.toml",
    "policies/read-only-analyst.toml",
    "policies/ci-harness.toml",
];

/// A temporary directory with `tmp/` (the TMPDIR of what the test runs) and a copy of
/// examples/sample-project at `rel`.
struct Stage {
    _root: tempfile::TempDir,
    base: PathBuf,
    tmp: PathBuf,
}

impl Stage {
    fn new() -> Stage {
        common::require_fuse();
        let root = tempfile::Builder::new()
            .prefix("scopefs-examples-")
            .tempdir()
            .unwrap();
        let base = fs::canonicalize(root.path()).unwrap();
        let tmp = base.join("tmp");
        fs::create_dir(&tmp).unwrap();
        Stage {
            _root: root,
            base,
            tmp,
        }
    }

    /// Copies examples/sample-project to `rel` under the stage (symlinks kept as they are).
    fn project(&self, rel: &str) -> PathBuf {
        let dest = self.base.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(example("sample-project"))
            .arg(&dest)
            .status()
            .unwrap();
        assert!(status.success(), "cp -a sample-project");
        dest
    }

    fn assert_clean(&self, context: &str) {
        let left: Vec<String> = mountinfo()
            .into_iter()
            .filter(|e| e.fstype == "fuse.scopefs" && e.mount_point.starts_with(&self.base))
            .map(|e| e.line)
            .collect();
        assert!(
            left.is_empty(),
            "{context}: mounts left:\n{}",
            left.join("\n")
        );
        let entries: Vec<PathBuf> = fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(entries.is_empty(), "{context}: left in TMPDIR: {entries:?}");
    }
}

fn assert_success(outcome: &Outcome, what: &str) {
    assert_eq!(
        outcome.code(),
        Some(0),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        outcome.stdout,
        outcome.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Policies

#[test]
fn example_policies_check_clean() {
    for policy in POLICIES {
        for with_source in [false, true] {
            let mut cmd = common::scopefs();
            cmd.arg("check").arg("-c").arg(example(policy));
            // coding-agent.toml leaves the overlay to `run` (a temporary one) or to
            // `mount --overlay DIR`; check answers as mount does, so it is given one.
            if policy == "policies/coding-agent.toml" {
                cmd.arg("--overlay").arg("/tmp/scopefs-example-overlay");
            }
            if with_source {
                cmd.arg(example("sample-project"));
            }
            let outcome = run_with_timeout(cmd, TIMEOUT);
            assert_success(&outcome, &format!("scopefs check -c {policy}"));
        }
    }
}

/// docs/policy.md shows `examples/policy.toml` without its comments: the same keys and values.
#[test]
fn policy_doc_quotes_examples_policy_toml() {
    let readme = fs::read_to_string(repo().join("docs/policy.md")).unwrap();
    let intro = "This is `examples/policy.toml`:";
    let after = readme
        .split_once(intro)
        .unwrap_or_else(|| panic!("docs/policy.md no longer says {intro:?}"))
        .1;
    let block = after
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a ```toml block after the introduction")
        .0;
    let quoted: toml::Value = toml::from_str(block).expect("the quoted block is TOML");
    let file: toml::Value =
        toml::from_str(&fs::read_to_string(example("policy.toml")).unwrap()).unwrap();
    assert_eq!(
        quoted, file,
        "docs/policy.md's quote and examples/policy.toml differ"
    );
}

/// `examples/policy.toml` mounted as written, from a checkout's `examples/` (its overlay,
/// `../../agent-overlay`, lands beside the checkout): the code and tests appear, secrets,
/// history, logs, a nested `src/` and everything else do not, writes to `src/` go to the
/// overlay and others are refused.
#[test]
fn examples_policy_toml_mounts_as_annotated() {
    let stage = Stage::new();
    let project = stage.project("project");
    fs::create_dir(project.join(".git")).unwrap();
    fs::write(project.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::write(project.join("src/debug.log"), "a log\n").unwrap();
    fs::create_dir_all(project.join("docs/src")).unwrap();
    fs::write(project.join("docs/src/nested.rs"), "fn nested() {}\n").unwrap();
    let checkout = stage.base.join("checkout");
    fs::create_dir_all(checkout.join("examples")).unwrap();
    let policy = checkout.join("examples/policy.toml");
    fs::copy(example("policy.toml"), &policy).unwrap();
    let script = "test -e src/lib.rs && test -e tests/greeting.rs && test -e README.md \
                  && test ! -e .env && test ! -e .git && test ! -e src/debug.log \
                  && test ! -e docs/guide.md && test ! -e notes/todo.txt \
                  && test ! -e docs/src/nested.rs && test ! -e docs \
                  && test ! -e certs/server.pem && test ! -e notes \
                  && echo 'pub fn more() {}' > src/more.rs \
                  && ! (echo x >> README.md) 2>/dev/null";
    let mut cmd = common::scopefs();
    cmd.env("TMPDIR", &stage.tmp)
        .current_dir(&project)
        .arg("run")
        .arg("-c")
        .arg(&policy)
        .arg(&project)
        .args(["--", "sh", "-c", script]);
    let outcome = run_with_timeout(cmd, TIMEOUT);
    assert_success(&outcome, "run with examples/policy.toml");
    assert_eq!(
        fs::read_to_string(stage.base.join("agent-overlay/upper/src/more.rs")).unwrap(),
        "pub fn more() {}\n",
        "the write is in ../agent-overlay"
    );
    assert!(
        !project.join("src/more.rs").exists(),
        "the project is not written"
    );
    stage.assert_clean("examples/policy.toml run");
}

#[test]
fn coding_agent_policy_mounts_with_an_overlay() {
    let stage = Stage::new();
    let project = stage.project("project");
    let script = "test ! -e .env && test ! -e .ssh && test ! -e build/output.log \
                  && grep -q greeting src/lib.rs \
                  && echo 'pub fn more() {}' > src/more.rs \
                  && ! (echo x >> README.md) 2>/dev/null \
                  && ! (echo x > notes/new.txt) 2>/dev/null";
    let mut cmd = common::scopefs();
    cmd.env("TMPDIR", &stage.tmp)
        .current_dir(&project)
        .arg("run")
        .arg("-c")
        .arg(example("policies/coding-agent.toml"))
        .arg(&project)
        .args(["--", "sh", "-c", script]);
    let outcome = run_with_timeout(cmd, TIMEOUT);
    assert_success(&outcome, "run with coding-agent.toml");
    assert!(
        outcome.stderr.lines().any(|l| l == "A src/more.rs"),
        "summary: {}",
        outcome.stderr
    );
    assert!(
        !project.join("src/more.rs").exists(),
        "the project is not written"
    );
    stage.assert_clean("coding-agent run");
}

#[test]
fn ci_harness_policy_writes_build_output_in_place() {
    let stage = Stage::new();
    let project = stage.project("project");
    let script = "mkdir -p target && echo built > target/out.txt \
                  && ! (echo x >> README.md) 2>/dev/null \
                  && test ! -e deploy && test -e .env.example && test ! -e .env";
    let mut cmd = common::scopefs();
    cmd.env("TMPDIR", &stage.tmp)
        .current_dir(&project)
        .arg("run")
        .arg("-c")
        .arg(example("policies/ci-harness.toml"))
        .arg("--in-place")
        .arg(&project)
        .args(["--", "sh", "-c", script]);
    let outcome = run_with_timeout(cmd, TIMEOUT);
    assert_success(&outcome, "run --in-place with ci-harness.toml");
    assert_eq!(
        fs::read_to_string(project.join("target/out.txt")).unwrap(),
        "built\n"
    );
    assert!(
        project.join("deploy/id_ed25519").exists(),
        "hidden, not removed"
    );
    stage.assert_clean("ci-harness run");
}

// ---------------------------------------------------------------------------------------------
// Container entrypoint

fn entrypoint(stage: &Stage, env: &[(&str, &Path)], cwd: &Path, script: &str) -> Outcome {
    let mut cmd = Command::new(example("docker/entrypoint.sh"));
    cmd.env_remove("RUST_LOG")
        .env("TMPDIR", &stage.tmp)
        .env("SCOPEFS_BIN", BIN)
        .current_dir(cwd);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.args(["sh", "-c", script]);
    run_with_timeout(cmd, TIMEOUT)
}

#[test]
fn entrypoint_serves_the_view_to_the_agent_and_cleans_up() {
    let stage = Stage::new();
    let workspace = stage.project("workspace");
    let view = stage.base.join("view");
    let out = stage.base.join("out");
    fs::create_dir(&out).unwrap();
    let script = format!(
        "pwd > '{o}/pwd'; ls -A > '{o}/ls'; cat .env > /dev/null 2> '{o}/cat-err'; \
         echo \"$SCOPEFS_VIEW\" > '{o}/view'",
        o = out.display()
    );
    let outcome = entrypoint(
        &stage,
        &[("SCOPEFS_SOURCE", &workspace), ("SCOPEFS_VIEW", &view)],
        &stage.base,
        &script,
    );
    assert_success(&outcome, "entrypoint");
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(
        read("pwd").trim_end(),
        view.to_str().unwrap(),
        "agent starts in the view"
    );
    assert_eq!(read("view").trim_end(), view.to_str().unwrap());
    let listed = read("ls");
    assert!(listed.lines().any(|l| l == "README.md"), "ls: {listed}");
    assert!(!listed.lines().any(|l| l == ".env"), "ls: {listed}");
    assert!(read("cat-err").contains("No such file or directory"));
    assert!(workspace.join(".env").exists());
    common::assert_not_mounted(&view, "after the entrypoint");
    assert_eq!(
        fs::read_dir(&view).unwrap().count(),
        0,
        "the view dir is empty"
    );
    stage.assert_clean("entrypoint");
}

#[test]
fn entrypoint_in_place_as_an_unprivileged_agent() {
    let stage = Stage::new();
    // The agent (nobody) may enter the view but not reach the real workspace: its parent is
    // root's, mode 0700. The view's root shows the workspace's own mode, 0755.
    fs::set_permissions(&stage.base, fs::Permissions::from_mode(0o755)).unwrap();
    let private = stage.base.join("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let workspace = stage.project("private/workspace");
    fs::set_permissions(&workspace, fs::Permissions::from_mode(0o755)).unwrap();
    let out = stage.base.join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();

    let script = format!(
        "id -u > '{o}/uid'; pwd > '{o}/pwd'; ls -A > '{o}/ls'; \
         cat .env > /dev/null 2> '{o}/cat-err'; \
         grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status > '{o}/status'; \
         umount \"$PWD\" 2> '{o}/umount-err'; echo $? > '{o}/umount-rc'; \
         (echo x > new.txt) 2> '{o}/write-err'; exit 0",
        o = out.display()
    );
    let policy = example("policies/read-only-analyst.toml");
    let outcome = entrypoint(
        &stage,
        &[
            ("SCOPEFS_SOURCE", &workspace),
            ("SCOPEFS_IN_PLACE", Path::new("1")),
            ("SCOPEFS_AGENT_USER", Path::new("nobody")),
            ("SCOPEFS_POLICY", &policy),
        ],
        &stage.base,
        &script,
    );
    assert_success(&outcome, "entrypoint --in-place as nobody");
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("uid").trim(), "65534", "the agent runs as nobody");
    assert_eq!(
        read("pwd").trim_end(),
        workspace.to_str().unwrap(),
        "same paths"
    );
    let mut listed: Vec<String> = read("ls").lines().map(str::to_owned).collect();
    listed.sort();
    // read-only-analyst: README*, docs/, src/ and *.md; nothing else.
    assert_eq!(listed, ["README.md", "docs", "src"], "ls inside");
    assert!(read("cat-err").contains("No such file or directory"));
    // A user without capabilities, none to pass on through exec, and no way to gain them
    // (`no_new_privs`: setuid binaries such as umount(8) run without privileges). Its bounding
    // set is its user namespace's, which grants nothing to a process that has none of them.
    let status = read("status");
    for field in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in the agent's status:\n{status}"));
        assert_eq!(
            value.trim(),
            "0000000000000000",
            "the agent's {field}:\n{status}"
        );
    }
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
        "the agent runs with no_new_privs:\n{status}"
    );
    assert_ne!(
        read("umount-rc").trim(),
        "0",
        "the agent cannot unmount the view"
    );
    assert!(read("write-err").contains("Read-only file system"));
    assert!(!workspace.join("new.txt").exists());
    stage.assert_clean("entrypoint --in-place");
}

#[test]
fn entrypoint_refuses_a_missing_workspace_clearly() {
    let stage = Stage::new();
    let missing = stage.base.join("nope");
    let outcome = entrypoint(&stage, &[("SCOPEFS_SOURCE", &missing)], &stage.base, "true");
    assert_eq!(outcome.code(), Some(2), "stderr: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains("is not a directory"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn dockerfile_copies_files_that_exist() {
    let dockerfile = fs::read_to_string(example("docker/Dockerfile")).unwrap();
    let mut copies = 0;
    for line in dockerfile.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from=") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "Dockerfile copies {src}, which is missing"
            );
            copies += 1;
        }
    }
    assert!(
        copies >= 4,
        "the Dockerfile copies the sources and the entrypoint"
    );
}

// ---------------------------------------------------------------------------------------------
// Shell harness

fn harness(stage: &Stage, args: &[&str]) -> Command {
    let mut cmd = Command::new(example("harness.sh"));
    cmd.env_remove("RUST_LOG")
        .env("TMPDIR", &stage.tmp)
        .env("SCOPEFS", BIN)
        .env("HARNESS_PROJECT", stage.project("project"))
        .args(args);
    cmd
}

#[test]
fn harness_passes_on_the_sample_project() {
    let stage = Stage::new();
    let outcome = run_with_timeout(harness(&stage, &[]), TIMEOUT);
    assert_success(&outcome, "examples/harness.sh");
    assert!(!outcome.stdout.contains("not ok"), "{}", outcome.stdout);
    assert_eq!(
        outcome
            .stdout
            .lines()
            .filter(|l| l.starts_with("ok - "))
            .count(),
        7
    );
    assert!(
        outcome.stdout.contains("#   A src/extra.rs"),
        "{}",
        outcome.stdout
    );
    stage.assert_clean("harness");
}

#[test]
fn harness_reports_a_failing_command_and_cleans_up() {
    let stage = Stage::new();
    let outcome = run_with_timeout(harness(&stage, &["false"]), TIMEOUT);
    assert_eq!(outcome.code(), Some(1), "stdout: {}", outcome.stdout);
    assert!(
        outcome
            .stdout
            .contains("not ok - the command succeeds (status 1)"),
        "{}",
        outcome.stdout
    );
    stage.assert_clean("harness with a failing command");
}

#[test]
fn harness_cleans_up_when_terminated() {
    let stage = Stage::new();
    let pid_file = stage.base.join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut cmd = harness(&stage, &["sh", "-c", &script]);
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while !fs::read_to_string(&pid_file)
        .unwrap_or_default()
        .ends_with('\n')
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the harness's command did not start\nstdout: {}\nstderr: {}",
            cap.stdout(),
            cap.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let command_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        mountinfo()
            .iter()
            .any(|e| e.fstype == "fuse.scopefs" && e.mount_point.starts_with(&stage.tmp)),
        "the view is mounted while the command runs"
    );

    common::signal(i32::try_from(child.id()).unwrap(), libc::SIGTERM);
    let status = wait_child(&mut child, TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "the harness did not end after SIGTERM\nstderr: {}",
            cap.stderr()
        )
    });
    assert_eq!(status.code(), Some(143), "stderr: {}", cap.stderr());
    assert!(
        common::wait_gone(command_pid, TIMEOUT),
        "the harness stops its command"
    );
    stage.assert_clean("harness terminated");
}

// ---------------------------------------------------------------------------------------------
// LangChain

/// Slow on the first run: creates a virtualenv and installs LangChain from PyPI (cached
/// afterwards under ~/.cache/scopefs/langchain-venv).
#[test]
fn langchain_agent_cannot_read_secrets_and_writes_to_the_overlay() {
    let stage = Stage::new();
    let mut cmd = Command::new(example("langchain/run.sh"));
    cmd.env_remove("RUST_LOG")
        .env("TMPDIR", &stage.tmp)
        .env("SCOPEFS", BIN);
    let started = Instant::now();
    let outcome = run_with_timeout(cmd, LANGCHAIN_TIMEOUT);
    assert_success(&outcome, "examples/langchain/run.sh");
    assert!(!outcome.stdout.contains("not ok"), "{}", outcome.stdout);
    for line in [
        "ok - read_file on .env reports an error",
        "ok - write_file under src/ succeeds",
        "ok - the write landed in the overlay",
        "ok - scopefs diff lists exactly that write",
        "ok - the project is untouched",
    ] {
        assert!(
            outcome.stdout.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            outcome.stdout
        );
    }
    eprintln!("examples/langchain/run.sh took {:?}", started.elapsed());
    stage.assert_clean("langchain");
}
