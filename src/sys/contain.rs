//! The process tree that contains `run`'s command (SPEC §1, "`run` contains its command").
//!
//! `run` serves the view and starts this binary again as `scopefs internal-contain`, whose
//! [`run`] builds the tree below and exits with the command's status:
//!
//! 1. **The builder** (this process, root of its user namespace: `run` as a normal user has
//!    made one of its own) enters new mount and PID namespaces and rebuilds the mount table:
//!    every mount `nodev`; the view over SOURCE's own path (and again at its temporary
//!    mountpoint); `run`'s scratch directory, the overlay and the audit log covered; a minimal
//!    `/dev` (null, zero, full, random, urandom, tty, a private `pts`, `shm`, and the caller's
//!    terminal as `console`); `/sys` read-only.
//! 2. **Init**, the builder's child and the PID namespace's first process, mounts that
//!    namespace's own `/proc` (its kernel-tuning files read-only), starts the command's process
//!    and waits for it, passing SIGINT and SIGTERM on and reaping orphans. When the command
//!    ends, init exits with its status, and the kernel ends whatever the command left behind.
//! 3. **The command's process** enters a user namespace and mount namespace of its own. The
//!    kernel then locks every mount it inherited (no umount, no bind that uncovers what lies
//!    beneath, no remount read-write), and it holds no capability outside that namespace. Init
//!    gives it ids that read as on the host (root stays uid 0); with `--user` it switches to
//!    that user. It sets no_new_privs and executes COMMAND.
//!
//! The builder and init stay outside the command's user namespace, where it has no capability,
//! and are non-dumpable besides, so it can reach neither through `/proc` nor ptrace; the
//! daemon lies outside the command's PID namespace altogether. The builder reports
//! once on a pipe to `run` ([`Report`]): the command started, or why not.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use super::ns::{self, attr};

/// What to contain and how.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where the view is mounted now.
    pub view: PathBuf,
    /// SOURCE: the view covers it in the command's namespace.
    pub source: PathBuf,
    /// `run`'s scratch directory, covered by an empty one (the view stays at its path if it
    /// was mounted inside).
    pub scratch: PathBuf,
    /// Directories the command must not reach (the overlay), covered by an empty one.
    pub hide_dirs: Vec<PathBuf>,
    /// Files the command must not reach (the audit log), covered by a device it cannot open.
    pub hide_files: Vec<PathBuf>,
    /// The command's working directory.
    pub cwd: PathBuf,
    /// The user to run the command as (root only); `None` keeps the caller's ids.
    pub user: Option<Identity>,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// A user to run the command as.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: OsString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

impl Identity {
    /// Looks up a user by name or number, with its primary and supplementary groups.
    pub fn lookup(user: &str) -> io::Result<Option<Identity>> {
        let found = match user.parse::<u32>() {
            Ok(uid) => nix::unistd::User::from_uid(Uid::from_raw(uid)),
            Err(_) => nix::unistd::User::from_name(user),
        }
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let name = std::ffi::CString::new(found.name.as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let groups = nix::unistd::getgrouplist(&name, found.gid)
            .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        Ok(Some(Identity {
            name: found.name.into(),
            uid: found.uid.as_raw(),
            gid: found.gid.as_raw(),
            groups: groups.into_iter().map(Gid::as_raw).collect(),
            home: found.dir,
        }))
    }
}

/// The one line the contained side sends `run` on its report descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The command is running.
    Started,
    /// The container could not be built; the message says why and how to fix it.
    Failed(String),
    /// The command's process could not be made ready to execute it (the error).
    NotExecuted(String),
    /// Executing the command failed with `errno` (ENOENT: no such command; EACCES: not
    /// executable, ...).
    CannotExecute { errno: i32, message: String },
}

impl Report {
    fn line(&self) -> String {
        let one_line = |s: &str| s.replace('\n', " ");
        match self {
            Report::Started => "started\n".to_string(),
            Report::Failed(m) => format!("failed {}\n", one_line(m)),
            Report::NotExecuted(m) => format!("exec {}\n", one_line(m)),
            Report::CannotExecute { errno, message } => {
                format!("exec errno={errno} {}\n", one_line(message))
            }
        }
    }

    /// The report of an `exec ...` line.
    fn exec(line: &str) -> Report {
        line.strip_prefix("errno=")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(errno, message)| {
                errno.parse().ok().map(|errno| Report::CannotExecute {
                    errno,
                    message: message.to_string(),
                })
            })
            .unwrap_or_else(|| Report::NotExecuted(line.to_string()))
    }

    /// Reads the report from `reader`; `None` if the contained side ended without one.
    pub fn read(reader: impl Read) -> Option<Report> {
        let mut line = String::new();
        BufReader::new(reader).read_line(&mut line).ok()?;
        let line = line.strip_suffix('\n')?;
        if line == "started" {
            return Some(Report::Started);
        }
        if let Some(m) = line.strip_prefix("failed ") {
            return Some(Report::Failed(m.to_string()));
        }
        line.strip_prefix("exec ").map(Report::exec)
    }

    fn send(&self, to: &mut File) {
        // If `run` is gone there is nobody to tell.
        let _ = to.write_all(self.line().as_bytes());
    }
}

/// The character devices of the command's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Builds the container, runs the command in it and returns its exit status (128+N when
/// signal N ended it). Must be called while the process has a single thread.
pub fn run(spec: &Spec, report: OwnedFd) -> i32 {
    let mut report = File::from(report);
    // Blocked from the start, so that a signal `run` passes on meanwhile waits for the
    // command instead of ending this process.
    let signals = waited_signals();
    if let Err(e) = signals.thread_block() {
        Report::Failed(format!("cannot block signals: {e}")).send(&mut report);
        return 1;
    }
    if let Err(message) = build(spec) {
        Report::Failed(message).send(&mut report);
        return 1;
    }
    // SAFETY: this process has a single thread (run's precondition), so the child may do
    // anything the parent could.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => std::process::exit(init(spec, report, &signals)),
        Ok(ForkResult::Parent { child }) => {
            drop(report);
            wait_passing_signals(child, &signals)
        }
        Err(e) => {
            Report::Failed(format!("cannot start the command's init process: {e}"))
                .send(&mut report);
            1
        }
    }
}

/// SIGINT and SIGTERM (passed on to the child) and SIGCHLD (a child ended).
fn waited_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGCHLD);
    set
}

/// Waits for `child`, reaping every other child that ends meanwhile and passing SIGINT and
/// SIGTERM on to it; returns its exit status. The signals must be blocked.
fn wait_passing_signals(child: Pid, signals: &SigSet) -> i32 {
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap(child) {
                    return code;
                }
            }
            Ok(signal) => {
                if let Err(e) = nix::sys::signal::kill(child, signal) {
                    tracing::debug!(error = %e, "the child is already gone");
                }
            }
            Err(e) => tracing::debug!(error = %e, "sigwait"),
        }
    }
}

/// Reaps every child that has ended; `child`'s exit status if it is one of them.
fn reap(child: Pid) -> Option<i32> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                return Some(128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => {}
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::ECHILD) => return Some(1),
            Err(_) => return None,
        }
    }
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!(
        "containing the command: cannot {what} {}: {e}",
        path.display()
    )
}

/// Step 1: namespaces and the mount table, in the builder.
fn build(spec: &Spec) -> Result<(), String> {
    std::env::set_current_dir("/").map_err(|e| failed("enter", Path::new("/"), e))?;
    if !Uid::effective().is_root() {
        return Err("the command's container is built by root of its user namespace".into());
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("cannot make the command's namespaces: {e}"))?;
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| format!("cannot make the command's supervisor non-dumpable: {e}"))?;
    ns::make_all_private().map_err(|e| failed("make private", Path::new("/"), e))?;

    // Copies taken before anything is covered.
    let view = ns::copy_mount(&spec.view, true).map_err(|e| failed("copy", &spec.view, e))?;
    let mut devices = Vec::new();
    for name in DEVICES {
        let path = Path::new("/dev").join(name);
        match ns::copy_mount(&path, false) {
            Ok(fd) => devices.push((name, fd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("copy", &path, e)),
        }
    }
    // The terminal the command talks to, which the new `pts` does not hold, becomes
    // /dev/console, where ttyname() finds it.
    if let Some(terminal) = terminal_of_stdio() {
        match ns::copy_mount(&terminal, false) {
            Ok(fd) => devices.push(("console", fd)),
            Err(e) => tracing::debug!(error = %e, "no /dev/console for the command"),
        }
    }
    // No device node anywhere but the ones of the new /dev.
    ns::set_attributes(Path::new("/"), attr::NO_DEVICES, 0, true)
        .map_err(|e| failed("mark nodev", Path::new("/"), e))?;
    // Copies of a device that nobody can open, to cover files with.
    let mut covers = Vec::new();
    for file in spec.hide_files.iter().filter(|f| f.exists()) {
        let null = ns::copy_mount(Path::new("/dev/null"), false)
            .map_err(|e| failed("copy", Path::new("/dev/null"), e))?;
        covers.push((file, null));
    }
    let sys = Path::new("/sys");
    match ns::set_attributes(sys, attr::READ_ONLY, 0, true) {
        // No sysfs mounted there: nothing to protect.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => other.map_err(|e| failed("make read-only", sys, e))?,
    }

    build_dev(devices)?;

    ensure_dir_in_new_dev(&spec.source)?;
    ns::attach(&view, &spec.source).map_err(|e| failed("mount the view over", &spec.source, e))?;

    cover_scratch(spec)?;
    for dir in &spec.hide_dirs {
        if dir.starts_with(&spec.scratch) || !dir.is_dir() {
            continue;
        }
        ns::mount_virtual(
            "tmpfs",
            dir,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "mode=000,size=4k",
        )
        .map_err(|e| failed("hide", dir, e))?;
    }
    for (file, null) in &covers {
        ns::attach(null, file).map_err(|e| failed("hide", file, e))?;
    }
    ns::set_attributes(Path::new("/dev"), attr::READ_ONLY, 0, false)
        .map_err(|e| failed("make read-only", Path::new("/dev"), e))?;
    Ok(())
}

/// A minimal `/dev` over the host's: the devices copied before, a private `pts` instance,
/// `shm`, and the usual links into `/proc/self/fd`.
fn build_dev(devices: Vec<(&str, OwnedFd)>) -> Result<(), String> {
    let dev = Path::new("/dev");
    ns::mount_virtual(
        "tmpfs",
        dev,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "mode=0755,size=64k",
    )
    .map_err(|e| failed("mount a tmpfs at", dev, e))?;
    for (name, device) in devices {
        let path = dev.join(name);
        File::create(&path).map_err(|e| failed("create", &path, e))?;
        ns::attach(&device, &path).map_err(|e| failed("mount", &path, e))?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts).map_err(|e| failed("create", &pts, e))?;
    ns::mount_virtual(
        "devpts",
        &pts,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )
    .map_err(|e| failed("mount devpts at", &pts, e))?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).map_err(|e| failed("create", &shm, e))?;
    ns::mount_virtual(
        "tmpfs",
        &shm,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        "mode=1777",
    )
    .map_err(|e| failed("mount a tmpfs at", &shm, e))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev.join(link);
        std::os::unix::fs::symlink(target, &path).map_err(|e| failed("create", &path, e))?;
    }
    Ok(())
}

/// The terminal device standard input, output or error is open on, if any.
fn terminal_of_stdio() -> Option<PathBuf> {
    (0..=2).find_map(|fd| {
        let path = fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        let is_terminal = match fd {
            0 => io::stdin().is_terminal(),
            1 => io::stdout().is_terminal(),
            _ => io::stderr().is_terminal(),
        };
        (is_terminal && path.starts_with("/dev/")).then_some(path)
    })
}

/// A path under `/dev` lies in the new, empty `/dev` (or its `shm`): make it there. Elsewhere
/// it exists already and nothing is made.
fn ensure_dir_in_new_dev(path: &Path) -> Result<(), String> {
    if path.starts_with("/dev") {
        fs::create_dir_all(path).map_err(|e| failed("create", path, e))?;
    }
    Ok(())
}

/// Covers `run`'s scratch directory (the temporary overlay, the view's temporary mountpoint)
/// with an empty read-only one; a view mounted inside it stays at its path.
fn cover_scratch(spec: &Spec) -> Result<(), String> {
    let scratch = &spec.scratch;
    if scratch.starts_with(&spec.source) {
        // TMPDIR inside SOURCE: the real directory already lies beneath the view.
        return Ok(());
    }
    ensure_dir_in_new_dev(scratch)?;
    // The view, now over SOURCE, is copied from there: its own path is about to be covered.
    let view = match spec.view.strip_prefix(scratch) {
        Ok(rel) => Some((
            rel,
            ns::copy_mount(&spec.source, true).map_err(|e| failed("copy", &spec.source, e))?,
        )),
        Err(_) => None,
    };
    ns::mount_virtual(
        "tmpfs",
        scratch,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "mode=0755,size=16k",
    )
    .map_err(|e| failed("cover", scratch, e))?;
    if let Some((rel, view)) = view {
        let at = scratch.join(rel);
        fs::create_dir_all(&at).map_err(|e| failed("create", &at, e))?;
        ns::attach(&view, &at).map_err(|e| failed("mount the view at", &at, e))?;
    }
    ns::set_attributes(scratch, attr::READ_ONLY, 0, false)
        .map_err(|e| failed("make read-only", scratch, e))
}

/// Step 2: the PID namespace's init. Mounts its `/proc`, starts the command's process, tells
/// `run` whether the command started, then waits for it.
fn init(spec: &Spec, mut report: File, signals: &SigSet) -> i32 {
    // Init ends with the builder (and so with `run`), taking the whole namespace with it.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if let Err(message) = mount_proc() {
        Report::Failed(message).send(&mut report);
        return 1;
    }
    let pipes = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .and_then(|up| Ok((up, nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)));
    let ((up_read, up_write), (down_read, down_write)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            Report::Failed(format!("cannot make a pipe: {e}")).send(&mut report);
            return 1;
        }
    };
    // SAFETY: init has a single thread (the builder had one when it forked), so the child may
    // do anything the parent could.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop((up_read, down_write, report));
            command_process(spec, File::from(up_write), File::from(down_read))
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            Report::Failed(format!("cannot start the command's process: {e}")).send(&mut report);
            return 1;
        }
    };
    drop((up_write, down_read));
    let mut up = BufReader::new(File::from(up_read));
    let mut down = File::from(down_write);
    let mut line = String::new();
    let _ = up.read_line(&mut line);
    let outcome = match line.strip_suffix('\n') {
        Some("unshared") => match ns::map_ids_as_outside(child) {
            Ok(()) => {
                let _ = down.write_all(b"go");
                drop(down);
                line.clear();
                let _ = up.read_line(&mut line);
                match line
                    .strip_suffix('\n')
                    .and_then(|l| l.strip_prefix("exec "))
                {
                    Some(error) => Report::exec(error),
                    None => Report::Started,
                }
            }
            Err(e) => Report::Failed(format!(
                "cannot map the command's user ids: {}",
                ns::refusal(&e)
            )),
        },
        Some(other) => Report::Failed(
            other
                .strip_prefix("failed ")
                .unwrap_or("the command's process ended before it started")
                .to_string(),
        ),
        None => Report::Failed("the command's process ended before it started".to_string()),
    };
    let started = outcome == Report::Started;
    outcome.send(&mut report);
    drop(report);
    if !started {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    }
    let code = wait_passing_signals(child, signals);
    if started { code } else { 127 }
}

/// Mounts the PID namespace's own `/proc` over the host's, its kernel-tuning parts
/// read-only.
fn mount_proc() -> Result<(), String> {
    let proc = Path::new("/proc");
    ns::mount_virtual(
        "proc",
        proc,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "",
    )
    .map_err(|e| failed("mount /proc at", proc, e))?;
    for part in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        let path = proc.join(part);
        if !path.exists() {
            continue;
        }
        let copy = ns::copy_mount(&path, false).map_err(|e| failed("copy", &path, e))?;
        ns::attach(&copy, &path).map_err(|e| failed("mount", &path, e))?;
        ns::set_attributes(&path, attr::READ_ONLY, 0, false)
            .map_err(|e| failed("make read-only", &path, e))?;
    }
    Ok(())
}

/// Step 3: the command's process. Enters its own user and mount namespaces (locking every
/// mount), waits for init to map its ids, takes on the user's identity, and executes COMMAND.
fn command_process(spec: &Spec, mut up: File, mut down: File) -> ! {
    // Dumpable again (as after any exec), so that its /proc files, the id maps among them,
    // belong to its own user and init may write them.
    if let Err(e) = nix::sys::prctl::set_dumpable(true) {
        give_up(
            &mut up,
            format!("failed cannot make the command's process dumpable: {e}\n"),
        );
    }
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        give_up(
            &mut up,
            format!(
                "failed {}\n",
                ns::refusal(&io::Error::from_raw_os_error(e as i32))
            ),
        );
    }
    if up.write_all(b"unshared\n").is_err() {
        std::process::exit(127);
    }
    let mut go = [0u8; 2];
    if down.read_exact(&mut go).is_err() {
        std::process::exit(127);
    }
    drop(down);
    // Entered with the caller's rights: a user of `--user` may not be able to walk to it.
    if let Err(e) = std::env::set_current_dir(&spec.cwd) {
        give_up(&mut up, format!("exec {e}\n"));
    }
    if let Some(user) = &spec.user {
        if let Err(e) = take_identity(user) {
            give_up(
                &mut up,
                format!(
                    "exec cannot switch to user {}: {e}\n",
                    user.name.to_string_lossy()
                ),
            );
        }
    }
    // The signals init and the builder wait for stay blocked across fork; the command
    // starts with none blocked, as after any exec.
    if let Err(e) = SigSet::empty().thread_set_mask() {
        give_up(&mut up, format!("exec cannot unblock signals: {e}\n"));
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        give_up(&mut up, format!("exec cannot set no_new_privs: {e}\n"));
    }
    let mut command = Command::new(&spec.program);
    // PWD names the working directory, whatever the caller's shell left there.
    command.args(&spec.args).env("PWD", &spec.cwd);
    if let Some(user) = &spec.user {
        command
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    let error = command.exec();
    give_up(
        &mut up,
        Report::CannotExecute {
            errno: error.raw_os_error().unwrap_or(0),
            message: error.to_string(),
        }
        .line(),
    )
}

/// Tells init why the command's process gives up, and ends it.
fn give_up(up: &mut File, line: String) -> ! {
    let _ = up.write_all(line.as_bytes());
    std::process::exit(127)
}

/// Takes on `user`'s groups and ids, dropping every capability.
fn take_identity(user: &Identity) -> nix::Result<()> {
    let groups: Vec<Gid> = user.groups.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups)?;
    let gid = Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid)?;
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid)
}
