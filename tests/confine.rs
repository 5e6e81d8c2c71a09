//! The daemon's self-confinement with Landlock (THREATS R10).
//!
//! Through the real daemon: `scopefs mount` and `scopefs run` serve a view, and the test makes
//! each of the daemon's request threads (`fuser-N`) try opens of its own with ptrace (see
//! `common/inject.rs`): SOURCE may be read, the overlay's `work/` written, and nothing outside
//! reached, whatever the thread asks. On a kernel without (full) Landlock the daemon must say
//! so on stderr instead, as docs/security.md promises.
//!
//! And the function itself: `scopefs::confine::restrict_thread` in a fresh process (Landlock
//! confines the calling thread for good, so the test binary runs itself again with
//! `SCOPEFS_CONFINE_CHILD` set), trying each kind of open.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use scopefs::confine::{Confinement, Enforced, restrict_thread};

const CHILD: &str = "SCOPEFS_CONFINE_CHILD";

/// The oldest Landlock ABI with every file-system right the daemon handles (`IoctlDev`,
/// ABI 5); on older kernels its confinement is partial and it says so.
const FULL_ABI: i64 = 5;

/// The Landlock ABI of the running kernel; 0 without Landlock.
fn abi() -> i64 {
    #[cfg(target_arch = "x86_64")]
    return common::inject::landlock_abi();
    #[cfg(not(target_arch = "x86_64"))]
    panic!("the Landlock tests inject system calls with ptrace and know only x86_64's registers")
}

/// What the daemon must have said on stderr about Landlock on this kernel.
fn assert_landlock_warning(stderr: &str, what: &str) {
    let abi = abi();
    let said = |needle: &str| stderr.lines().any(|l| l.contains(needle));
    if abi == 0 {
        assert!(
            said("has no Landlock") && said("unconfined"),
            "{what}: this kernel has no Landlock, and the daemon must warn that it runs unconfined; stderr:\n{stderr}"
        );
    } else if abi < FULL_ABI {
        assert!(
            said("only part of the Landlock confinement"),
            "{what}: Landlock ABI {abi} enforces only part of the confinement, and the daemon must say so; stderr:\n{stderr}"
        );
    } else {
        assert!(
            !said("Landlock") && !said("unconfined"),
            "{what}: Landlock ABI {abi} enforces all of the confinement, yet the daemon warned; stderr:\n{stderr}"
        );
    }
}

/// Makes every request thread of daemon `pid` try: reading `readable` (SOURCE), writing it,
/// creating a file in `writable` (the overlay's work directory, when there is one), and
/// reading `outside`. Asserts what Landlock on this kernel must allow and refuse.
#[cfg(target_arch = "x86_64")]
fn assert_request_threads_confined(
    pid: i32,
    readable: &Path,
    writable: Option<&Path>,
    outside: &Path,
) {
    use common::inject::{Stopped, threads_named};
    let confined = abi() >= 1;
    let threads = threads_named(pid, "fuser-");
    assert!(
        !threads.is_empty(),
        "daemon {pid} has no request threads named fuser-N:\n{}",
        where_threads_wait(pid)
    );
    for tid in threads {
        let mut t = Stopped::seize(tid).unwrap_or_else(|e| panic!("stop thread {tid}: {e}"));
        let read = t.open(readable, libc::O_RDONLY).unwrap();
        let write = t.open(readable, libc::O_WRONLY).unwrap();
        let create = writable
            .map(|dir| {
                t.open(
                    &dir.join(format!("probe-{tid}")),
                    libc::O_WRONLY | libc::O_CREAT,
                )
            })
            .transpose()
            .unwrap();
        let escape = t.open(outside, libc::O_RDONLY).unwrap();
        for fd in [read, write, escape]
            .into_iter()
            .chain(create)
            .filter_map(Result::ok)
        {
            t.close(fd).unwrap();
        }
        t.resume()
            .unwrap_or_else(|e| panic!("let thread {tid} go: {e}"));
        if let Some(dir) = writable {
            let _ = fs::remove_file(dir.join(format!("probe-{tid}")));
        }

        let thread = format!("request thread {tid} of daemon {pid}");
        assert!(read.is_ok(), "{thread} cannot read SOURCE: {read:?}");
        if let Some(create) = create {
            assert!(
                create.is_ok(),
                "{thread} cannot create in the overlay's work directory: {create:?}"
            );
        }
        if confined {
            assert_eq!(
                escape,
                Err(libc::EACCES),
                "{thread} opened {} outside SOURCE and the overlay",
                outside.display()
            );
            assert_eq!(
                write,
                Err(libc::EACCES),
                "{thread} opened SOURCE for writing in a view that never writes it"
            );
        } else {
            assert!(
                escape.is_ok(),
                "without Landlock nothing confines {thread}: {escape:?}"
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn assert_request_threads_confined(_: i32, _: &Path, _: Option<&Path>, _: &Path) {
    panic!("the Landlock tests inject system calls with ptrace and know only x86_64's registers")
}

/// A scene with SOURCE's `a.txt` and a file outside both SOURCE and the overlay.
fn confinement_scene() -> (Scene, std::path::PathBuf) {
    let s = Scene::new();
    s.file("a.txt");
    let outside = s.base().join("outside");
    fs::create_dir(&outside).unwrap();
    let secret = outside.join("secret.txt");
    fs::write(&secret, b"not for the daemon\n").unwrap();
    (s, secret)
}

#[test]
fn mount_confines_its_request_threads() {
    let (s, outside) = confinement_scene();
    let overlay = s.base().join("overlay");
    let policy = s.policy(&format!(
        "[writes]\nmode = \"overlay\"\noverlay = {:?}\n",
        overlay.display().to_string()
    ));
    let cap = Capture::new();
    let mut cmd = scopefs();
    cmd.arg("mount")
        .arg("--foreground")
        .arg("-c")
        .arg(&policy)
        .arg(&s.src)
        .arg(&s.mnt);
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().expect("spawn scopefs mount --foreground");
    let pid = child.id() as i32;
    if wait_mounted(&s.mnt, Duration::from_secs(30)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        cleanup_mount(&s.mnt, Some(pid));
        panic!(
            "nothing mounted 30 s after --foreground start\n{}",
            cap.stderr()
        );
    }
    let checked = std::panic::catch_unwind(|| {
        assert_eq!(
            fs::read(s.m("a.txt")).unwrap(),
            content_for("a.txt".as_ref())
        );
        assert_request_threads_confined(pid, &s.s("a.txt"), Some(&overlay.join("work")), &outside);
        // The threads serve on as before.
        fs::write(s.m("new.txt"), b"written after the probes\n").unwrap();
        assert_eq!(
            fs::read(s.m("a.txt")).unwrap(),
            content_for("a.txt".as_ref())
        );
    });
    signal(pid, libc::SIGTERM);
    let status = wait_child(&mut child, Duration::from_secs(30));
    cleanup_mount(&s.mnt, Some(pid));
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
    let status = status.expect("the daemon did not exit within 30 s of SIGTERM");
    assert!(status.success(), "daemon exit: {status}\n{}", cap.stderr());
    assert_landlock_warning(&cap.stderr(), "scopefs mount");
    assert_eq!(
        fs::read(overlay.join("upper/new.txt")).unwrap(),
        b"written after the probes\n"
    );
}

#[test]
fn run_confines_its_request_threads() {
    let (s, outside) = confinement_scene();
    let ready = s.base().join("ready");
    let stop = s.base().join("stop");
    let cap = Capture::new();
    let mut cmd = scopefs();
    cmd.arg("run")
        .arg(&s.src)
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg("cat a.txt > \"$1\" && while [ ! -e \"$2\" ]; do sleep 0.05; done")
        .arg("sh")
        .arg(&ready)
        .arg(&stop);
    cap.attach(&mut cmd);
    let mut child = cmd.spawn().expect("spawn scopefs run");
    let pid = child.id() as i32;
    let checked = std::panic::catch_unwind(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the command did not start within 30 s\n{}",
                cap.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_request_threads_confined(pid, &s.s("a.txt"), None, &outside);
    });
    fs::write(&stop, b"").unwrap();
    let status = wait_child(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
    let status = status.expect("scopefs run did not end within 30 s of its command");
    assert!(status.success(), "scopefs run: {status}\n{}", cap.stderr());
    assert_eq!(fs::read(&ready).unwrap(), content_for("a.txt".as_ref()));
    assert_landlock_warning(&cap.stderr(), "scopefs run");
}

/// The daemon makes itself non-dumpable (docs/security.md), so that no other process of its user can
/// read its memory or its descriptors through /proc. Asked of the daemon itself:
/// `prctl(PR_GET_DUMPABLE)` in one of its threads (dumpability belongs to the process).
#[test]
fn the_daemon_is_not_dumpable() {
    #[cfg(target_arch = "x86_64")]
    {
        use common::inject::{Stopped, threads_named};
        let s = Scene::new();
        s.file("a.txt");
        let m = s.mount(&[]);
        assert_eq!(
            fs::read(m.m("a.txt")).unwrap(),
            content_for("a.txt".as_ref())
        );
        let tid = *threads_named(m.pid, "fuser-")
            .first()
            .unwrap_or_else(|| panic!("no request thread in\n{}", where_threads_wait(m.pid)));
        let mut t = Stopped::seize(tid).unwrap();
        let dumpable = t
            .syscall(
                libc::SYS_prctl,
                [libc::PR_GET_DUMPABLE as u64, 0, 0, 0, 0, 0],
            )
            .unwrap();
        t.resume().unwrap();
        assert_eq!(dumpable, 0, "PR_GET_DUMPABLE of daemon {}", m.pid);
        assert_eq!(
            fs::read(m.m("a.txt")).unwrap(),
            content_for("a.txt".as_ref())
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    panic!("this test injects a system call with ptrace and knows only x86_64's registers");
}

// ---------------------------------------------------------------------------------------------
// The function itself

/// One open to try in the confined child.
type Attempt<'a> = Box<dyn Fn() -> std::io::Result<()> + 'a>;

/// Runs in the re-executed child: confine, then try each open and print one line per try.
fn child(base: &Path) {
    let source = File::open(base.join("source")).unwrap();
    let overlay = File::open(base.join("overlay")).unwrap();
    let rules = Confinement {
        read: vec![source.as_fd()],
        write: vec![overlay.as_fd()],
        append: Vec::new(),
    };
    let enforced = restrict_thread(&rules).unwrap();
    println!("\n@@enforced {enforced:?}");
    let tries: [(&str, Attempt<'_>); 6] = [
        (
            "read-source",
            Box::new(|| fs::read(base.join("source/a.txt")).map(drop)),
        ),
        (
            "write-source",
            Box::new(|| fs::write(base.join("source/a.txt"), b"x")),
        ),
        (
            "write-overlay",
            Box::new(|| fs::write(base.join("overlay/new.txt"), b"x")),
        ),
        (
            "read-outside",
            Box::new(|| fs::read(base.join("outside/secret.txt")).map(drop)),
        ),
        ("read-etc", Box::new(|| fs::read("/etc/hostname").map(drop))),
        (
            "write-tmp",
            Box::new(|| fs::write(base.join("outside/new.txt"), b"x")),
        ),
    ];
    for (name, attempt) in tries {
        match attempt() {
            Ok(()) => println!("@@{name} ok"),
            Err(e) => println!("@@{name} {}", e.raw_os_error().unwrap_or(0)),
        }
    }
}

#[test]
fn a_confined_thread_reaches_only_source_and_overlay() {
    if let Some(base) = std::env::var_os(CHILD) {
        child(Path::new(&base));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["source", "overlay", "outside"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
    }
    fs::write(dir.path().join("source/a.txt"), b"a").unwrap();
    fs::write(dir.path().join("outside/secret.txt"), b"s").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_confined_thread_reaches_only_source_and_overlay",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("@@{name} ")))
            .unwrap_or_else(|| panic!("no line for {name} in: {text}"))
            .to_string()
    };
    let abi = abi();
    let (enforced, denied) = match abi {
        0 => (Enforced::Not, "ok".to_owned()),
        abi if abi < FULL_ABI => (Enforced::Partly, libc::EACCES.to_string()),
        _ => (Enforced::Fully, libc::EACCES.to_string()),
    };
    assert_eq!(
        result("enforced"),
        format!("{enforced:?}"),
        "Landlock enforcement on a kernel with ABI {abi}"
    );
    assert_eq!(result("read-source"), "ok");
    assert_eq!(
        result("write-source"),
        denied,
        "SOURCE is read-only to the daemon"
    );
    assert_eq!(result("write-overlay"), "ok");
    assert_eq!(result("read-outside"), denied, "a file outside both trees");
    assert_eq!(result("read-etc"), denied, "the host's /etc");
    assert_eq!(result("write-tmp"), denied, "creating outside both trees");
    if abi > 0 {
        assert_eq!(
            fs::read(dir.path().join("source/a.txt")).unwrap(),
            b"a",
            "SOURCE unchanged"
        );
    }
}
