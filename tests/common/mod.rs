//! Harness for the real-mount tests: scenes (a SOURCE and an empty MOUNTPOINT in their own
//! temporary directory), the `Mounted` guard that never leaves a mount behind, a digest of
//! SOURCE to prove it unchanged, and thin wrappers over the syscalls std does not expose.
//!
//! FUSE is required: a machine without /dev/fuse fails every test that mounts, loudly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[cfg(target_arch = "x86_64")]
pub mod inject;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_scopefs");

/// How long `scopefs mount` may take to answer before the test fails.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `scopefs umount` may take.
pub const UMOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Fails (never skips) when the kernel's FUSE device is absent.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "FUSE is missing: /dev/fuse does not exist. These tests mount a real FUSE file system; \
         load the fuse module (modprobe fuse) or run the container with --device /dev/fuse"
    );
}

// ---------------------------------------------------------------------------------------------
// Scenes

/// A temporary directory holding `src/` (SOURCE), `mnt/` (an empty MOUNTPOINT) and room for
/// policy files. Mount it with [`Scene::mount`]; the returned guard borrows the scene, so the
/// mount is always gone before the directories are removed.
pub struct Scene {
    root: TempDir,
    pub src: PathBuf,
    pub mnt: PathBuf,
}

impl Scene {
    pub fn new() -> Scene {
        Scene::new_in(&std::env::temp_dir())
    }

    /// A scene under `dir` instead of the default temporary directory.
    pub fn new_in(dir: &Path) -> Scene {
        require_fuse();
        let root = tempfile::Builder::new()
            .prefix("scopefs-test-")
            .tempdir_in(dir)
            .expect("create a temporary directory");
        let base = fs::canonicalize(root.path()).expect("canonicalize the temporary directory");
        let src = base.join("src");
        let mnt = base.join("mnt");
        fs::create_dir(&src).expect("create SOURCE");
        fs::create_dir(&mnt).expect("create MOUNTPOINT");
        Scene { root, src, mnt }
    }

    /// The scene's own directory (outside SOURCE and MOUNTPOINT): a place for policy files.
    pub fn base(&self) -> PathBuf {
        self.src.parent().expect("scene root").to_path_buf()
    }

    /// Writes a policy file next to SOURCE and returns its path.
    pub fn policy(&self, toml: &str) -> PathBuf {
        let path = self.base().join("policy.toml");
        fs::write(&path, toml).expect("write policy file");
        path
    }

    /// SOURCE joined with a relative path given as bytes or text.
    pub fn s(&self, rel: impl AsRef<OsStr>) -> PathBuf {
        self.src.join(rel.as_ref())
    }

    /// MOUNTPOINT joined with a relative path.
    pub fn m(&self, rel: impl AsRef<OsStr>) -> PathBuf {
        self.mnt.join(rel.as_ref())
    }

    /// Creates a regular file in SOURCE (parents included) whose content names it.
    pub fn file(&self, rel: impl AsRef<OsStr>) -> PathBuf {
        let rel = rel.as_ref();
        let content = content_for(rel);
        self.file_with(rel, &content)
    }

    /// Creates a regular file in SOURCE (parents included) with the given content.
    pub fn file_with(&self, rel: impl AsRef<OsStr>, content: &[u8]) -> PathBuf {
        let path = self.s(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent in SOURCE");
        }
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Creates a directory in SOURCE (parents included).
    pub fn dir(&self, rel: impl AsRef<OsStr>) -> PathBuf {
        let path = self.s(rel);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        path
    }

    /// Creates a symlink `rel -> target` in SOURCE (parents included).
    pub fn symlink(&self, rel: impl AsRef<OsStr>, target: impl AsRef<OsStr>) -> PathBuf {
        let path = self.s(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent in SOURCE");
        }
        std::os::unix::fs::symlink(target.as_ref(), &path)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
        path
    }

    /// Makes the scene reachable by other users (the temporary directory is 0700 by default).
    pub fn open_to_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        for dir in [self.base(), self.src.clone(), self.mnt.clone()] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        }
    }

    /// Mounts SOURCE at MOUNTPOINT with `args` placed before them, asserting success.
    pub fn mount(&self, args: &[&str]) -> Mounted<'_> {
        Mounted::new(self, args)
    }
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

/// The content the scene gives a file: its own name, so a test can tell files apart.
pub fn content_for(rel: &OsStr) -> Vec<u8> {
    let mut content = b"content of ".to_vec();
    content.extend_from_slice(rel.as_bytes());
    content.push(b'\n');
    content
}

// ---------------------------------------------------------------------------------------------
// Running the binary

/// What a finished command left: status and both streams.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Captures a command's output through files rather than pipes, so a daemon that keeps an
/// inherited descriptor open cannot make the test wait for it.
pub struct Capture {
    dir: TempDir,
}

impl Capture {
    pub fn new() -> Capture {
        Capture {
            dir: tempfile::Builder::new()
                .prefix("scopefs-out-")
                .tempdir()
                .expect("temporary directory for output"),
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("stdout")
    }

    fn err(&self) -> PathBuf {
        self.dir.path().join("stderr")
    }

    /// Points the command's stdout and stderr at this capture's files.
    pub fn attach(&self, cmd: &mut Command) {
        let out = fs::File::create(self.out()).expect("stdout file");
        let err = fs::File::create(self.err()).expect("stderr file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.out()).unwrap_or_default()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.err()).unwrap_or_default()).into_owned()
    }
}

impl Default for Capture {
    fn default() -> Self {
        Capture::new()
    }
}

/// A `scopefs` command with a clean logging environment.
pub fn scopefs() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs `cmd` to completion, killing it and failing the test after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Outcome {
    let cap = Capture::new();
    cap.attach(&mut cmd);
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let status = wait_child(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{desc} did not finish within {timeout:?}\nstderr: {}",
            cap.stderr()
        )
    });
    Outcome {
        status,
        stdout: cap.stdout(),
        stderr: cap.stderr(),
    }
}

/// Waits for a child for at most `timeout`; `None` if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for a child: {e}"),
        }
    }
}

/// Runs `f` on its own thread and fails the test if it has not returned after `timeout`: a
/// request the daemon never answers must fail the test, not hang the suite.
pub fn within<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {timeout:?} (the daemon is stuck)"),
    }
}

// ---------------------------------------------------------------------------------------------
// Mount table

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub mount_options: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
    pub line: String,
}

fn unescape_mountinfo(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(v) = field
                .get(i + 1..i + 4)
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// The current mount table of this process's namespace.
pub fn mountinfo() -> Vec<MountEntry> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            if left.len() < 6 || right.len() < 3 {
                return None;
            }
            Some(MountEntry {
                mount_point: PathBuf::from(unescape_mountinfo(left[4])),
                mount_options: left[5].split(',').map(str::to_owned).collect(),
                fstype: right[0].to_owned(),
                source: right[1].to_owned(),
                super_options: right[2].split(',').map(str::to_owned).collect(),
                line: line.to_owned(),
            })
        })
        .collect()
}

/// The mounts stacked on `path`, bottom first.
pub fn mounts_at(path: &Path) -> Vec<MountEntry> {
    mountinfo()
        .into_iter()
        .filter(|e| e.mount_point == path)
        .collect()
}

pub fn is_mounted(path: &Path) -> bool {
    !mounts_at(path).is_empty()
}

/// Asserts nothing at all is mounted at `path`.
pub fn assert_not_mounted(path: &Path, context: &str) {
    let at = mounts_at(path);
    assert!(
        at.is_empty(),
        "{context}: expected nothing mounted at {}, found:\n{}",
        path.display(),
        at.iter()
            .map(|e| e.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The daemon pid from a `scopefs:PID` mount source.
pub fn daemon_pid(entry: &MountEntry) -> i32 {
    let pid = entry
        .source
        .strip_prefix("scopefs:")
        .and_then(|p| p.parse::<i32>().ok())
        .unwrap_or_else(|| {
            panic!(
                "mount source should be `scopefs:PID`, mountinfo line: {}",
                entry.line
            )
        });
    assert!(pid > 0, "daemon pid in {}", entry.line);
    pid
}

/// Polls until `path` is mounted (returning the top entry) or `timeout` passes.
pub fn wait_mounted(path: &Path, timeout: Duration) -> Option<MountEntry> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(entry) = mounts_at(path).pop() {
            return Some(entry);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// The state letter of /proc/PID/stat, or `None` when the process is gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// A process is alive when it exists and is not a zombie waiting for a parent to reap it.
pub fn alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Polls until `pid` is gone (or a zombie) or `timeout` passes.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}): {}", io::Error::last_os_error());
}

/// The number of open descriptors of `pid`, from /proc/PID/fd.
pub fn fd_count(pid: i32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

// ---------------------------------------------------------------------------------------------
// The mount guard

/// A live mount of a scene. Dropping it unmounts with `scopefs umount`, as a user would, and
/// fails the test when that unmount fails, hangs or leaves the daemon running, or when the
/// daemon died without the test killing it ([`Mounted::kill`]). Whatever went wrong, the mount
/// is cleared first (`umount -l`, SIGKILL to the daemon), so one failed test never leaves a
/// mount that breaks the others; while a test is already failing, only that clearing runs.
pub struct Mounted<'a> {
    pub scene: &'a Scene,
    pub pid: i32,
    pub entry: MountEntry,
    killed: bool,
}

impl<'a> Mounted<'a> {
    fn new(scene: &'a Scene, args: &[&str]) -> Mounted<'a> {
        let mut cmd = scopefs();
        cmd.arg("mount").args(args).arg(&scene.src).arg(&scene.mnt);
        let desc = format!("{cmd:?}");
        let out = run_with_timeout(cmd, MOUNT_TIMEOUT);
        if !out.status.success() {
            // A failed mount must leave nothing behind, but make sure of it for the next test.
            cleanup_mount(&scene.mnt, None);
            panic!(
                "{desc} failed with {}\nstderr:\n{}\nstdout:\n{}",
                out.status, out.stderr, out.stdout
            );
        }
        let Some(entry) = mounts_at(&scene.mnt).pop() else {
            panic!(
                "{desc} exited 0 but nothing is mounted at {}\nstderr:\n{}",
                scene.mnt.display(),
                out.stderr
            )
        };
        let mut guard = Mounted {
            scene,
            pid: 0,
            entry: entry.clone(),
            killed: false,
        };
        assert_eq!(
            entry.fstype, "fuse.scopefs",
            "fstype of the mount, line: {}",
            entry.line
        );
        guard.pid = daemon_pid(&entry);
        guard
    }

    pub fn mnt(&self) -> &Path {
        &self.scene.mnt
    }

    /// MOUNTPOINT joined with a relative path.
    pub fn m(&self, rel: impl AsRef<OsStr>) -> PathBuf {
        self.scene.m(rel)
    }

    /// Kills the daemon with SIGKILL, as a crash would, and waits until it is gone. The dead
    /// mount stays in the table until `scopefs umount` (or this guard) clears it.
    pub fn kill(&mut self) {
        self.killed = true;
        signal(self.pid, libc::SIGKILL);
        assert!(
            wait_gone(self.pid, Duration::from_secs(10)),
            "daemon {} survived SIGKILL",
            self.pid
        );
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let mnt = &self.scene.mnt;
        if thread::panicking() {
            cleanup_mount(mnt, Some(self.pid));
            return;
        }
        let result = if !self.killed && is_mounted(mnt) && !alive(self.pid) {
            Err(format!(
                "the daemon (pid {}) of the mount at {} died during the test",
                self.pid,
                mnt.display()
            ))
        } else {
            unmount_checked(mnt, self.pid)
        };
        if let Err(problem) = result {
            cleanup_mount(mnt, Some(self.pid));
            panic!("{problem}");
        }
    }
}

/// Unmounts `mnt` with `scopefs umount` the way a user does, if anything is mounted there, and
/// checks what `umount` promises: it exits 0 within [`UMOUNT_TIMEOUT`], nothing stays mounted,
/// and the daemon `pid` has exited by the time it returns. With nothing mounted (the test
/// unmounted it itself), the daemon must be gone within a few seconds. Says what went wrong;
/// the caller clears the mount.
///
/// "Busy" is tried again for up to [`BUSY_RETRIES`] tenths of a second: a child that another
/// test thread is starting holds a copy of this process's descriptors, the view's among them,
/// until it calls exec. Anything that keeps the view busy for longer fails.
pub fn unmount_checked(mnt: &Path, pid: i32) -> Result<(), String> {
    if !is_mounted(mnt) {
        return if wait_gone(pid, Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(format!(
                "nothing is mounted at {}, but its daemon (pid {pid}) is still running 10 s later",
                mnt.display()
            ))
        };
    }
    let mut tries = 0;
    let stderr = loop {
        let mut cmd = scopefs();
        cmd.arg("umount").arg(mnt);
        let cap = Capture::new();
        cap.attach(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run scopefs umount: {e}"))?;
        let Some(status) = wait_child(&mut child, UMOUNT_TIMEOUT) else {
            let stuck = format!(
                "scopefs umount (pid {}):\n{}daemon (pid {pid}):\n{}{}",
                child.id(),
                where_threads_wait(child.id() as i32),
                where_threads_wait(pid),
                holders(mnt)
            );
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "scopefs umount {} did not return within {UMOUNT_TIMEOUT:?}\n{stuck}stderr: {}",
                mnt.display(),
                cap.stderr()
            ));
        };
        if status.success() {
            break cap.stderr();
        }
        let stderr = cap.stderr();
        tries += 1;
        if !stderr.contains("is busy") || tries >= BUSY_RETRIES {
            return Err(format!(
                "scopefs umount {} failed with {status} (try {tries})\nstderr: {stderr}{}",
                mnt.display(),
                holders(mnt)
            ));
        }
        thread::sleep(Duration::from_millis(100));
    };
    if is_mounted(mnt) {
        return Err(format!(
            "scopefs umount {} exited 0 but the mount is still there:\n{}\nstderr: {stderr}",
            mnt.display(),
            mounts_at(mnt)
                .iter()
                .map(|e| e.line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    if alive(pid) {
        return Err(format!(
            "scopefs umount {} returned while the daemon (pid {pid}) was still running\nstderr: {stderr}",
            mnt.display()
        ));
    }
    Ok(())
}

/// How many times [`unmount_checked`] tries a busy unmount.
pub const BUSY_RETRIES: u32 = 20;

/// The processes whose mount namespace still has something mounted at `mnt`, and those with a
/// descriptor, working directory or root beneath it.
fn holders(mnt: &Path) -> String {
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    let needle = format!(" {} ", mnt.display());
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = || {
            String::from_utf8_lossy(&fs::read(dir.join("cmdline")).unwrap_or_default())
                .replace('\0', " ")
        };
        if let (Ok(ns), Ok(text)) = (
            fs::read_link(dir.join("ns/mnt")),
            fs::read_to_string(dir.join("mountinfo")),
        ) && text.contains(&needle)
            && seen.insert(ns.clone())
        {
            out.push_str(&format!(
                "  mounted in {} of pid {pid}: {}\n",
                ns.display(),
                cmd()
            ));
        }
        let mut links: Vec<PathBuf> = ["cwd", "root"].iter().map(|l| dir.join(l)).collect();
        links.extend(
            fs::read_dir(dir.join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for link in links {
            if fs::read_link(&link).is_ok_and(|target| target.starts_with(mnt)) {
                out.push_str(&format!("  {} is in the view: {}\n", link.display(), cmd()));
            }
        }
    }
    out
}

/// Unmounts whatever is at `mnt` by every means available, then makes sure `pid` is gone.
pub fn cleanup_mount(mnt: &Path, pid: Option<i32>) {
    let pids: Vec<i32> = pid
        .into_iter()
        .chain(
            mounts_at(mnt)
                .iter()
                .filter_map(|e| e.source.strip_prefix("scopefs:")?.parse().ok()),
        )
        .filter(|p| *p > 0)
        .collect();
    if is_mounted(mnt) {
        let mut cmd = scopefs();
        cmd.arg("umount").arg(mnt);
        let cap = Capture::new();
        cap.attach(&mut cmd);
        if let Ok(mut child) = cmd.spawn()
            && wait_child(&mut child, UMOUNT_TIMEOUT).is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    for _ in 0..10 {
        if !is_mounted(mnt) {
            break;
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    for pid in pids {
        if alive(pid) && !wait_gone(pid, Duration::from_secs(5)) && is_scopefs(pid) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One line per thread of `pid`: its name, state, the system call it is in and the kernel
/// function it waits in, for a message about a process that hangs.
pub fn where_threads_wait(pid: i32) -> String {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return "  (gone)\n".to_owned();
    };
    let mut out = String::new();
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |name: &str| {
            fs::read_to_string(dir.join(name))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default()
        };
        let state = read("stat")
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            .unwrap_or_default();
        let syscall = read("syscall");
        let syscall = syscall.split_whitespace().next().unwrap_or("?");
        out.push_str(&format!(
            "  {} {:?} state {state} syscall {syscall} wchan {}\n",
            task.file_name().to_string_lossy(),
            read("comm"),
            read("wchan")
        ));
    }
    out
}

fn is_scopefs(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "scopefs")
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// SOURCE digest

/// A description of every entry below `root`: path, type, mode, owner, size, mtime, ctime,
/// content hash, symlink target, device number and `user.*`/`trusted.*`/`security.*` xattrs.
/// Equal digests before and after mean nothing was changed (atime aside).
pub fn tree_digest(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    digest_into(root, root, &mut out);
    out
}

fn digest_into(root: &Path, path: &Path, out: &mut BTreeMap<Vec<u8>, String>) {
    let meta = fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {} for the digest: {e}", path.display()));
    let rel = path
        .strip_prefix(root)
        .expect("below root")
        .as_os_str()
        .as_bytes()
        .to_vec();
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        "socket"
    };
    let mut desc = format!(
        "{kind} mode={:o} uid={} gid={} size={} mtime={}.{} ctime={}.{} nlink={} rdev={}",
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.nlink(),
        meta.rdev()
    );
    if ft.is_file() {
        let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut h = DefaultHasher::new();
        h.write(&data);
        desc.push_str(&format!(" content={:016x}", h.finish()));
    }
    if ft.is_symlink() {
        let target = fs::read_link(path).expect("readlink for the digest");
        desc.push_str(&format!(" target={:?}", target));
    }
    let mut names = llistxattr(path).unwrap_or_default();
    names.sort();
    for name in names {
        let value = lgetxattr(path, &name).unwrap_or_default();
        desc.push_str(&format!(
            " xattr[{}]={:?}",
            String::from_utf8_lossy(&name),
            String::from_utf8_lossy(&value)
        ));
    }
    out.insert(rel, desc);
    if ft.is_dir() {
        let mut children: Vec<PathBuf> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        children.sort();
        for child in children {
            digest_into(root, &child, out);
        }
    }
}

/// Asserts two digests are equal, naming the entries that differ.
pub fn assert_same_tree(
    before: &BTreeMap<Vec<u8>, String>,
    after: &BTreeMap<Vec<u8>, String>,
    context: &str,
) {
    if before == after {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diffs.push(format!("removed {:?}: {v}", String::from_utf8_lossy(k))),
            Some(w) if w != v => diffs.push(format!(
                "changed {:?}:\n  before {v}\n  after  {w}",
                String::from_utf8_lossy(k)
            )),
            Some(_) => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            diffs.push(format!("added {:?}: {v}", String::from_utf8_lossy(k)));
        }
    }
    panic!("{context}: SOURCE changed:\n{}", diffs.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Syscalls std does not wrap

pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

fn cname(name: &[u8]) -> CString {
    CString::new(name).expect("xattr name without NUL")
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// lgetxattr(2): the value of one attribute, not following a final symlink.
pub fn lgetxattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let p = cpath(path);
    let n = cname(name);
    let mut buf = vec![0u8; 65536];
    // SAFETY: p and n are NUL-terminated; buf is writable for buf.len() bytes.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(buf)
}

/// getxattr(2): follows a final symlink.
pub fn getxattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let p = cpath(path);
    let n = cname(name);
    let mut buf = vec![0u8; 65536];
    // SAFETY: p and n are NUL-terminated; buf is writable for buf.len() bytes.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(buf)
}

/// llistxattr(2): attribute names, not following a final symlink.
pub fn llistxattr(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let p = cpath(path);
    let mut buf = vec![0u8; 65536];
    // SAFETY: p is NUL-terminated; buf is writable for buf.len() bytes.
    let len = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// lsetxattr(2).
pub fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let p = cpath(path);
    let n = cname(name);
    // SAFETY: p and n are NUL-terminated; value is readable for value.len() bytes.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// lremovexattr(2).
pub fn lremovexattr(path: &Path, name: &[u8]) -> io::Result<()> {
    let p = cpath(path);
    let n = cname(name);
    // SAFETY: p and n are NUL-terminated.
    check(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) })
}

/// mknod(2).
pub fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let p = cpath(path);
    // SAFETY: p is NUL-terminated.
    check(unsafe { libc::mknod(p.as_ptr(), mode, dev) })
}

/// truncate(2) by path.
pub fn truncate(path: &Path, len: i64) -> io::Result<()> {
    let p = cpath(path);
    // SAFETY: p is NUL-terminated.
    check(unsafe { libc::truncate(p.as_ptr(), len) })
}

/// utimensat(2) by path, setting both times to `secs` (not following a final symlink when
/// `nofollow`).
pub fn utimens(path: &Path, secs: i64, nofollow: bool) -> io::Result<()> {
    let p = cpath(path);
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: p is NUL-terminated; times points to two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), flags) })
}

/// open(2) with raw flags, returning the descriptor wrapped in a File.
pub fn open_raw(path: &Path, flags: libc::c_int) -> io::Result<fs::File> {
    use std::os::fd::FromRawFd;
    let p = cpath(path);
    // SAFETY: p is NUL-terminated; the mode argument is ignored without O_CREAT.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor this function owns.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// fallocate(2) of `len` bytes at offset 0, mode 0.
pub fn fallocate_fd(file: &fs::File, offset: i64, len: i64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate(2) takes a descriptor and integers; no memory is passed.
    check(unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) })
}

/// copy_file_range(2) of up to `len` bytes from the current offset of `from` to that of `to`;
/// returns how many were copied.
pub fn copy_file_range(from: &fs::File, to: &fs::File, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: null offsets mean "the descriptors' own offsets"; no other memory is passed.
    let n = unsafe {
        libc::copy_file_range(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// statvfs(3).
pub fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let p = cpath(path);
    // SAFETY: an all-zero statvfs is a valid value for the kernel to overwrite.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: p is NUL-terminated; st is a valid out-pointer.
    check(unsafe { libc::statvfs(p.as_ptr(), &mut st) })?;
    Ok(st)
}

// ---------------------------------------------------------------------------------------------
// Assertions

/// The errno of a result, or a description of the success.
pub fn errno_of<T: std::fmt::Debug>(res: &io::Result<T>) -> Result<i32, String> {
    match res {
        Ok(v) => Err(format!("succeeded with {v:?}")),
        Err(e) => e.raw_os_error().ok_or_else(|| format!("non-OS error {e}")),
    }
}

/// The symbolic name of an errno, for messages.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EROFS => "EROFS",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::ENODATA => "ENODATA",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EEXIST => "EEXIST",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTCONN => "ENOTCONN",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOTTY => "ENOTTY",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EMFILE => "EMFILE",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EXDEV => "EXDEV",
        libc::ESTALE => "ESTALE",
        libc::EBADF => "EBADF",
        libc::ENOSPC => "ENOSPC",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}

/// Asserts `res` failed with `expected`.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(res: io::Result<T>, expected: i32, what: &str) {
    match errno_of(&res) {
        Ok(got) if got == expected => {}
        Ok(got) => panic!(
            "{what}: expected {}, got {} ({:?})",
            errno_name(expected),
            errno_name(got),
            res.err()
        ),
        Err(desc) => panic!("{what}: expected {}, but it {desc}", errno_name(expected)),
    }
}

/// The names in a directory of the view, sorted, as raw bytes.
pub fn listing(dir: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").file_name())
        .collect();
    names.sort();
    names
}

/// Asserts the directory lists exactly `expected` (order does not matter).
#[track_caller]
pub fn assert_listing(dir: &Path, expected: &[&str]) {
    let mut want: Vec<OsString> = expected.iter().map(OsString::from).collect();
    want.sort();
    let got = listing(dir);
    assert_eq!(got, want, "listing of {}", dir.display());
}

/// Asserts every read-side operation on `mnt/rel` answers ENOENT and that the name is absent
/// from its parent's listing (when the parent itself is visible).
#[track_caller]
pub fn assert_hidden(mnt: &Path, rel: impl AsRef<OsStr>) {
    let rel = rel.as_ref();
    let path = mnt.join(rel);
    let what = |op: &str| format!("{op} {:?} (hidden)", rel);
    assert_errno(fs::symlink_metadata(&path), libc::ENOENT, &what("lstat"));
    assert_errno(fs::metadata(&path), libc::ENOENT, &what("stat"));
    assert_errno(fs::File::open(&path), libc::ENOENT, &what("open"));
    assert_errno(fs::read_link(&path), libc::ENOENT, &what("readlink"));
    assert_errno(lgetxattr(&path, b"user.x"), libc::ENOENT, &what("getxattr"));
    assert_errno(llistxattr(&path), libc::ENOENT, &what("listxattr"));
    assert_errno(fs::read_dir(&path), libc::ENOENT, &what("opendir"));
    let parent = path.parent().expect("parent");
    if fs::symlink_metadata(parent).is_ok_and(|m| m.is_dir()) {
        let name = path.file_name().expect("name");
        let names = listing(parent);
        assert!(
            !names.iter().any(|n| n == name),
            "{:?} is hidden but listed in {}: {names:?}",
            rel,
            parent.display()
        );
    }
}

/// Asserts `mnt/rel` is visible, listed in its parent, has the type of `src/rel`, and (for a
/// regular file) reads the same bytes.
#[track_caller]
pub fn assert_visible(scene: &Scene, rel: impl AsRef<OsStr>) {
    let rel = rel.as_ref();
    let view = scene.m(rel);
    let real = scene.s(rel);
    let vm = fs::symlink_metadata(&view)
        .unwrap_or_else(|e| panic!("lstat {:?} through the mount (should be visible): {e}", rel));
    let rm = fs::symlink_metadata(&real).expect("lstat in SOURCE");
    assert_eq!(
        vm.file_type(),
        rm.file_type(),
        "type of {:?} through the mount",
        rel
    );
    if rm.is_file() {
        let got =
            fs::read(&view).unwrap_or_else(|e| panic!("read {:?} through the mount: {e}", rel));
        let want = fs::read(&real).expect("read in SOURCE");
        assert_eq!(got, want, "content of {:?} through the mount", rel);
    }
    if rm.file_type().is_symlink() {
        assert_eq!(
            fs::read_link(&view).unwrap_or_else(|e| panic!("readlink {:?}: {e}", rel)),
            fs::read_link(&real).expect("readlink in SOURCE"),
            "symlink target of {:?}",
            rel
        );
    }
    let parent = view.parent().expect("parent");
    let name = view.file_name().expect("name");
    assert!(
        listing(parent).iter().any(|n| n == name),
        "{:?} is visible but not listed in {}",
        rel,
        parent.display()
    );
}

/// Turns text into an OsString path component from raw bytes.
pub fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}
