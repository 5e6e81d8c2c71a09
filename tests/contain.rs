//! `run` contains its command (SPEC §1; THREATS tests 10–13). From inside `run --in-place` and
//! plain `run` — as root, as root with `--user`, and as a normal user this test creates (with
//! fusermount3 installed and without it, which `run` does not need) — a script tries every
//! escape: umount and umount -l; non-recursive binds of / and of SOURCE's parent; mounting over and
//! moving the view; a fresh /proc; nsenter to pid 1, to the parent and to the daemon;
//! /proc/PID/root, cwd and fd of those; a block device holding the secret (by its /dev name and
//! by a node outside /dev); ptrace of the daemon and of init; open_by_handle_at with a forged
//! handle of the hidden file; writing into the overlay. Each escape runs twice: directly, and
//! from a user namespace the command makes itself (where a normal user has capabilities). None
//! may print the secret, while the command's ordinary work (same paths, writes per policy,
//! its exit status) still succeeds.
//!
//! This host's /dev/fuse is root's only (mode 0600, no udev). A normal user's run happens in a
//! private mount namespace of the test where /dev/fuse is a node of mode 0666, as udev makes
//! it on most distributions; one test shows the plain host's answer.

// Helpers outside #[test] functions state their expectations with unwrap and panic too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Outcome, mountinfo, run_with_timeout};

/// How long one contained run (two passes of every escape) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// PATH for every command the tests start (the pyenv shims under /root are not for others).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------------
// A user of the test's own, removed when the test ends

struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

/// Runs a passwd-changing command, retrying while another process holds the password file's
/// lock (useradd and userdel exit 10 then).
fn passwd_command(args: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            out.status.code() == Some(10) && Instant::now() < deadline,
            "{args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

impl TestUser {
    fn create() -> TestUser {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sfsc{}x{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        passwd_command(&[
            "useradd",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/bin/sh",
            "--user-group",
            &name,
        ]);
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        TestUser { name, uid, gid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        passwd_command(&["userdel", &self.name]);
    }
}

// ---------------------------------------------------------------------------------------------
// A loop device over an image that holds the secret

struct LoopDevice {
    path: PathBuf,
    rdev: u64,
}

impl LoopDevice {
    /// A loop device over an image whose only copy of `secret` lies at offset 4096; the image
    /// file itself is deleted, so the device is the one way to it.
    fn holding(secret: &str, dir: &Path) -> LoopDevice {
        let image = dir.join("secret.img");
        let mut bytes = vec![0u8; 1 << 20];
        bytes[4096..4096 + secret.len()].copy_from_slice(secret.as_bytes());
        fs::write(&image, &bytes).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::remove_file(&image).unwrap();
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let rdev = fs::metadata(&path).unwrap().rdev();
        LoopDevice { path, rdev }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

// ---------------------------------------------------------------------------------------------
// The stage

/// A SOURCE holding a secret in `.env`, `work/` where the command may write (the escape
/// scripts live there), TMPDIR for `run`, `state/` for the overlay, and a copy of the binary
/// that any user may run.
struct Stage {
    _root: tempfile::TempDir,
    base: PathBuf,
    src: PathBuf,
    work: PathBuf,
    tmp: PathBuf,
    state: PathBuf,
    bin: PathBuf,
    secret: String,
}

impl Stage {
    fn new() -> Stage {
        common::require_fuse();
        let root = tempfile::Builder::new()
            .prefix("scopefs-contain-")
            .tempdir()
            .unwrap();
        let base = fs::canonicalize(root.path()).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let src = base.join("src");
        let work = base.join("work");
        let tmp = base.join("tmp");
        let state = base.join("state");
        for dir in [&src, &work, &tmp, &state, &src.join("sub")] {
            fs::create_dir(dir).unwrap();
        }
        fs::set_permissions(&work, fs::Permissions::from_mode(0o777)).unwrap();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let secret = format!("TOKEN-{nanos}-{}", std::process::id());
        fs::write(src.join("README"), "the project\n").unwrap();
        fs::write(src.join("sub/notes.txt"), "notes\n").unwrap();
        fs::write(src.join(".env"), format!("{secret}\n")).unwrap();
        let bin = base.join("scopefs");
        fs::copy(common::BIN, &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        for (name, text) in [
            ("escapes.sh", ESCAPES),
            ("ptrace.py", PTRACE),
            ("handle.py", HANDLE),
        ] {
            fs::write(work.join(name), text).unwrap();
        }
        Stage {
            _root: root,
            base,
            src,
            work,
            tmp,
            state,
            bin,
            secret,
        }
    }

    /// Gives SOURCE, TMPDIR and `state/` to `user`, whose daemon reads the one and writes the
    /// others.
    fn hand_to(&self, user: &TestUser) {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&self.src)
            .arg(&self.tmp)
            .arg(&self.state)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Asserts nothing of a run is left: no view mounted under TMPDIR, TMPDIR empty.
    fn assert_clean(&self, context: &str) {
        let left: Vec<String> = mountinfo()
            .into_iter()
            .filter(|e| e.mount_point.starts_with(&self.base))
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

/// Who runs `scopefs run`.
#[derive(Clone, Copy)]
enum Runner<'a> {
    Root,
    /// Root, with `--user`.
    RootAs(&'a TestUser),
    /// A normal user, with /dev/fuse open to users; `fusermount3: false` hides fusermount3
    /// (`run` mounts the view in a user namespace of its own and needs none).
    User {
        user: &'a TestUser,
        fusermount3: bool,
    },
}

/// A shell script for the test's private mount namespace: /dev/fuse opened to users (a node
/// of mode `$1` on a tmpfs at `$2`, bound over it), fusermount3 hidden if `$3` is 1, then the
/// rest of the arguments run as the user `$4`.
const AS_USER: &str = r#"set -e
mode=$1 dir=$2 hide=$3 user=$4
shift 4
mount -t tmpfs -o mode=0755 scopefs-test-dev "$dir"
mknod -m "$mode" "$dir/fuse" c 10 229
mount --bind "$dir/fuse" /dev/fuse
if [ "$hide" = 1 ]; then mount --bind /dev/null "$(command -v fusermount3)"; fi
exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
"#;

/// `command` as `user` in a private mount namespace where /dev/fuse has mode `fuse_mode`.
fn as_user(
    stage: &Stage,
    user: &TestUser,
    fuse_mode: &str,
    fusermount3: bool,
    command: &[OsString],
) -> Command {
    let dev = stage.base.join("dev");
    fs::create_dir_all(&dev).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        AS_USER,
        "as-user",
    ])
    .arg(fuse_mode)
    .arg(&dev)
    .arg(if fusermount3 { "0" } else { "1" })
    .arg(&user.name)
    .args(command);
    cmd
}

/// `scopefs run ARGS SOURCE -- sh -c SCRIPT` from SOURCE's `sub/`, as `runner`.
fn run(stage: &Stage, runner: Runner<'_>, args: &[&str], script: &str) -> Outcome {
    let mut command: Vec<OsString> = vec![stage.bin.clone().into(), "run".into()];
    command.extend(args.iter().map(OsString::from));
    if let Runner::RootAs(user) = runner {
        command.push("--user".into());
        command.push(user.name.clone().into());
    }
    command.push(stage.src.clone().into());
    command.extend(["--", "sh", "-c", script].map(OsString::from));
    let mut cmd = match runner {
        Runner::Root | Runner::RootAs(_) => {
            let mut cmd = Command::new(&command[0]);
            cmd.args(&command[1..]);
            cmd
        }
        Runner::User { user, fusermount3 } => as_user(stage, user, "0666", fusermount3, &command),
    };
    cmd.current_dir(stage.src.join("sub"))
        .env_remove("RUST_LOG")
        .env_remove("SCOPEFS_VIEW")
        .env("PATH", PATH)
        .env("TMPDIR", &stage.tmp)
        .env("HOME", &stage.work);
    run_with_timeout(cmd, RUN_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------
// The escapes

/// Every escape, each printing what it got; `leak` prints the printable runs of a file or
/// device (the secret among them, were it readable). Reads `SRC`, `WORK`, `LOOP`, `BLK`,
/// `MAJ`, `MIN`, `ENV_INO`, `ENV_GEN`, `OVERLAY`, `CMD_PPID` (the command's parent) and
/// `OUTSIDE` (a process of the command's own user outside `run`) from the environment; finds
/// the daemon's pid where an attacker would, in the mount table.
const ESCAPES: &str = r#"S=$SRC
V=${SCOPEFS_VIEW:-$SRC}
T=$(mktemp -d "$WORK/m.XXXXXX")
D=$(sed -n 's/.* - fuse.scopefs scopefs:\([0-9]*\) .*/\1/p' /proc/self/mountinfo | head -n 1)
P=$CMD_PPID
echo "daemon=$D command's parent=$P uid=$(id -u)"
try() { label=$1; shift; echo "== $label: $*"; "$@" 2>&1; echo "rc=$? ($label)"; }
leak() {
    for f in "$@"; do
        echo "-- $f"
        timeout 5 head -c 2097152 "$f" 2>&1 | tr -c '[:print:]' '\n' | grep -v '^$' \
            | head -n 20 | sed 's/^/  | /'
    done
}
try umount-source umount "$S"; leak "$S/.env"
try umount-lazy-source umount -l "$S"; leak "$S/.env"
try umount-view umount "$V"; try umount-lazy-view umount -l "$V"; leak "$V/.env"
mkdir -p "$T/root" "$T/parent" "$T/rroot" "$T/proc" "$T/moved" "$T/over"
try bind-root mount --bind / "$T/root"; leak "$T/root$S/.env"
try bind-parent mount --bind "$(dirname "$S")" "$T/parent"; leak "$T/parent/$(basename "$S")/.env"
try rbind-root mount --rbind / "$T/rroot"; try umount-rbound-view umount -l "$T/rroot$S"; leak "$T/rroot$S/.env"
try move-view mount --move "$S" "$T/moved"; leak "$T/moved/.env" "$S/.env"
try mount-over mount -t tmpfs none "$S"; try umount-own umount "$S"; try umount-under umount "$S"; leak "$S/.env"
try bind-over mount --bind "$T/over" "$S"; try umount-own umount -l "$S"; try umount-under umount -l "$S"; leak "$S/.env"
try remount mount -i -o remount,rw,suid,dev "$S"
try mount-proc mount -t proc proc "$T/proc"; leak "$T/proc/$D/root$S/.env" "$T/proc/1/root$S/.env"
for p in 1 "$P" "$D" "$OUTSIDE"; do
    try nsenter-all nsenter -t "$p" -a cat "$S/.env"
    try nsenter-mnt-user nsenter -t "$p" -m -U cat "$S/.env"
    try nsenter-mnt nsenter -t "$p" -m cat "$S/.env"
    leak "/proc/$p/root$S/.env" "/proc/$p/cwd/.env" "/proc/$p/root/proc/$D/root$S/.env"
    try list-fds ls -l "/proc/$p/fd/"
    for fd in /proc/$p/fd/*; do leak "$fd" "$fd/.env"; done
    leak "/proc/$p/mem" "/proc/$p/environ"
done
leak "$LOOP" "$BLK"
try mknod mknod "$T/blk" b "$MAJ" "$MIN"; leak "$T/blk"
try ptrace python3 "$WORK/ptrace.py" "$D" 1 "$P"
try open-by-handle python3 "$WORK/handle.py" "$ENV_INO" "$ENV_GEN" "$WORK"
if [ -n "$OVERLAY" ]; then
    try write-overlay sh -c "echo evil > '$OVERLAY/upper/evil'"
    try list-overlay ls -la "$OVERLAY" "$OVERLAY/upper"
    leak "$OVERLAY/overlay.toml"
fi
echo "== done $1"
"#;

/// The escapes that must fail wherever they are tried (the labels of ESCAPES).
const MUST_FAIL: [&str; 16] = [
    "umount-source",
    "umount-lazy-source",
    "umount-view",
    "umount-lazy-view",
    "bind-root",
    "bind-parent",
    "umount-rbound-view",
    "move-view",
    "umount-under",
    "remount",
    "mount-proc",
    "nsenter-all",
    "nsenter-mnt-user",
    "mknod",
    "open-by-handle",
    "write-overlay",
];

/// ptrace(PTRACE_ATTACH) of each pid given, then a read of its memory through the attach.
const PTRACE: &str = r#"import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
for pid in sys.argv[1:]:
    r = libc.ptrace(16, int(pid), None, None)
    print("attach", pid, r, os.strerror(ctypes.get_errno()))
    if r == 0:
        os.waitpid(int(pid), 0)
        print(open("/proc/%s/cmdline" % pid, "rb").read())
        libc.ptrace(17, int(pid), None, None)
"#;

/// The "shocker" attack: a handle of any file on SOURCE's file system, rewritten to the hidden
/// file's inode and generation (ext4's FILEID_INO32_GEN), opened with open_by_handle_at.
const HANDLE: &str = r#"import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
class Handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("data", ctypes.c_ubyte * 128)]
ino, gen, anchor = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
h = Handle()
h.bytes = 128
mount_id = ctypes.c_int()
if libc.name_to_handle_at(-100, anchor.encode(), ctypes.byref(h), ctypes.byref(mount_id), 0) != 0:
    print("name_to_handle_at:", os.strerror(ctypes.get_errno()))
    sys.exit(2)
struct.pack_into("<II", h.data, 0, ino, gen)
h.bytes = 8
h.type = 1
mount_fd = os.open(anchor, os.O_RDONLY)
fd = libc.open_by_handle_at(mount_fd, ctypes.byref(h), os.O_RDONLY)
if fd < 0:
    print("open_by_handle_at:", os.strerror(ctypes.get_errno()))
    sys.exit(1)
print("read:", os.read(fd, 4096))
"#;

fn lines_of(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// A process outside `run`, ended however the test ends.
struct Outside(std::process::Child);

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The hidden file's inode and generation number (FS_IOC_GETVERSION), for the forged handle.
fn inode_and_generation(path: &Path) -> (u64, u64) {
    let out = Command::new("python3")
        .env("PATH", PATH)
        .args([
            "-c",
            "import fcntl, os, struct, sys\n\
             fd = os.open(sys.argv[1], os.O_RDONLY)\n\
             print(struct.unpack('l', fcntl.ioctl(fd, 0x80087601, bytes(8)))[0])",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let generation: u64 = text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "FS_IOC_GETVERSION of {}: {text}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (fs::metadata(path).unwrap().ino(), generation)
}

/// Runs every escape (twice) and the command's ordinary work as `runner` in `mode`
/// (`["--in-place"]` or none), and checks that nothing revealed the secret and the work got
/// done.
fn escapes_reveal_nothing(stage: &Stage, runner: Runner<'_>, in_place: bool) {
    let device = LoopDevice::holding(&stage.secret, &stage.base);
    // A block node outside /dev, open to all, for the same device.
    let blk = stage.work.join("blk");
    let _ = fs::remove_file(&blk);
    let major = libc::major(device.rdev);
    let minor = libc::minor(device.rdev);
    let made = Command::new("mknod")
        .args(["-m", "0666"])
        .arg(&blk)
        .args(["b", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(made.success());
    let (ino, generation) = inode_and_generation(&stage.src.join(".env"));

    // Controls, outside any view: each way really reaches the secret here.
    let control = |what: &str, mut cmd: Command| {
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(&stage.secret),
            "control: {what} outside the view reads the secret: {text}"
        );
    };
    let mut loop_read = Command::new("grep");
    loop_read
        .args(["-a", "-o", &stage.secret])
        .arg(&device.path);
    control("the loop device", loop_read);
    let mut handle = Command::new("python3");
    handle
        .env("PATH", PATH)
        .arg(stage.work.join("handle.py"))
        .arg(ino.to_string())
        .arg(generation.to_string())
        .arg(&stage.work);
    control("open_by_handle_at", handle);

    // A process of the command's own user outside `run`, whose root is the host's.
    let mut sleeper = Command::new("setpriv");
    match runner {
        Runner::Root => sleeper.arg("--reuid=0"),
        Runner::RootAs(user) | Runner::User { user, .. } => sleeper
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg("--clear-groups"),
    };
    let outside = Outside(sleeper.args(["--", "sleep", "600"]).spawn().unwrap());
    let overlay = stage.state.join("overlay");
    let _ = fs::remove_dir_all(&overlay);
    let script = format!(
        "export SRC='{src}' WORK='{work}' LOOP='{loop_dev}' BLK='{blk}' MAJ={major} MIN={minor} \
         ENV_INO={ino} ENV_GEN={generation} OVERLAY='{overlay}' CMD_PPID=$PPID \
         OUTSIDE={outside}; \
         cat \"$SRC/README\" && test ! -e \"$SRC/.env\" && ls \"$SRC\" && echo work > new.txt \
         && pwd && echo \"view=$SCOPEFS_VIEW\" && echo \"ids=$(id -u):$(id -g)\" \
         && stat -c 'owner=%u:%g' \"$SRC/README\" || exit 90; \
         sh \"$WORK/escapes.sh\" direct; \
         unshare -Urm sh \"$WORK/escapes.sh\" nested; \
         cat \"$SRC/README\" new.txt; exit 7",
        src = stage.src.display(),
        work = stage.work.display(),
        loop_dev = device.path.display(),
        blk = blk.display(),
        overlay = overlay.display(),
        outside = outside.0.id(),
    );
    let overlay_arg = overlay.to_str().unwrap();
    let mut args = vec!["--overlay", overlay_arg, "--writable", "sub/new.txt"];
    if in_place {
        args.push("--in-place");
    }
    let outcome = run(stage, runner, &args, &script);
    let all = format!("{}\n{}", outcome.stdout, outcome.stderr);

    assert!(
        !all.contains(&stage.secret),
        "an escape revealed the secret:\n{all}"
    );
    for pass in ["direct", "nested"] {
        assert!(
            lines_of(&outcome.stdout).contains(&format!("== done {pass}").as_str()),
            "the {pass} pass of the escapes ran to the end:\n{all}"
        );
    }
    let attached: Vec<&str> = lines_of(&all)
        .into_iter()
        .filter(|l| l.starts_with("attach ") && l.split_whitespace().nth(2) == Some("0"))
        .collect();
    assert!(attached.is_empty(), "ptrace attached: {attached:?}\n{all}");
    assert_eq!(
        outcome.code(),
        Some(7),
        "run exits with the command's status:\n{all}"
    );
    // Ordinary work: same paths in place, the view, writes per policy.
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("the project"), "{all}");
    assert!(lines.contains(&"README") && lines.contains(&"sub"), "{all}");
    let shown_root = if in_place {
        stage.src.clone()
    } else {
        PathBuf::from(
            lines
                .iter()
                .find_map(|l| l.strip_prefix("view="))
                .unwrap_or_else(|| panic!("no view= line:\n{all}")),
        )
    };
    assert!(
        lines.contains(&format!("{}/sub", shown_root.display()).as_str()),
        "the command starts in the view's sub/:\n{all}"
    );
    // Ids read as on the host: the command's own, and SOURCE's owner.
    let meta = fs::metadata(stage.src.join("README")).unwrap();
    let (uid, gid) = match runner {
        Runner::Root => (0, 0),
        Runner::RootAs(user) | Runner::User { user, .. } => (user.uid, user.gid),
    };
    assert!(
        lines.contains(&format!("ids={uid}:{gid}").as_str())
            && lines.contains(&format!("owner={}:{}", meta.uid(), meta.gid()).as_str()),
        "ids as on the host ({uid}:{gid}, README {}:{}):\n{all}",
        meta.uid(),
        meta.gid()
    );
    assert_eq!(
        lines.iter().rev().take(2).copied().collect::<Vec<_>>(),
        ["work", "the project"],
        "after the escapes the view is still there and the command's write too:\n{all}"
    );
    // The escapes were refused, not skipped.
    for label in MUST_FAIL {
        let codes: Vec<&str> = lines_of(&all)
            .into_iter()
            .filter_map(|l| l.strip_suffix(&format!(" ({label})")))
            .filter_map(|l| l.strip_prefix("rc="))
            .collect();
        assert!(
            !codes.is_empty() && codes.iter().all(|rc| *rc != "0"),
            "`{label}` must fail in every pass ({codes:?}):\n{all}"
        );
    }
    // The overlay holds the command's write and nothing it wrote there directly.
    assert_eq!(
        fs::read_to_string(overlay.join("upper/sub/new.txt")).unwrap(),
        "work\n"
    );
    assert!(
        !overlay.join("upper/evil").exists(),
        "written past the view"
    );
    assert!(
        !stage.src.join("sub/new.txt").exists(),
        "SOURCE is not written"
    );
    assert_eq!(
        fs::read_to_string(stage.src.join(".env")).unwrap(),
        format!("{}\n", stage.secret)
    );
    stage.assert_clean("after the escapes");
}

#[test]
fn root_in_place_escapes_reveal_nothing() {
    let stage = Stage::new();
    escapes_reveal_nothing(&stage, Runner::Root, true);
}

#[test]
fn root_plain_run_escapes_reveal_nothing() {
    let stage = Stage::new();
    escapes_reveal_nothing(&stage, Runner::Root, false);
}

#[test]
fn root_with_user_escapes_reveal_nothing() {
    let stage = Stage::new();
    let user = TestUser::create();
    // The user writes its change through the view, where the kernel checks its permissions.
    fs::set_permissions(stage.src.join("sub"), fs::Permissions::from_mode(0o777)).unwrap();
    escapes_reveal_nothing(&stage, Runner::RootAs(&user), true);
    escapes_reveal_nothing(&stage, Runner::RootAs(&user), false);
}

#[test]
fn normal_user_escapes_reveal_nothing() {
    let stage = Stage::new();
    let user = TestUser::create();
    stage.hand_to(&user);
    let runner = Runner::User {
        user: &user,
        fusermount3: true,
    };
    escapes_reveal_nothing(&stage, runner, true);
    escapes_reveal_nothing(&stage, runner, false);
}

#[test]
fn normal_user_without_fusermount3_escapes_reveal_nothing() {
    let stage = Stage::new();
    let user = TestUser::create();
    stage.hand_to(&user);
    let runner = Runner::User {
        user: &user,
        fusermount3: false,
    };
    escapes_reveal_nothing(&stage, runner, true);
    escapes_reveal_nothing(&stage, runner, false);
}

// ---------------------------------------------------------------------------------------------
// Hosts that forbid what containment needs

/// Runs `command` as `user` inside a user namespace (every id mapped to itself) whose limit
/// of user namespaces within it is 0: `user.max_user_namespaces`, which Linux keeps per user
/// namespace, so the host's own setting stays untouched however the test ends.
const NO_USERNS_AS: &str = r#"import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
up_r, up_w = os.pipe()
down_r, down_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        os._exit(90)
    os.write(up_w, b"u")
    os.read(down_r, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.execvp(command[0], command)
os.read(up_r, 1)
for name in ("uid_map", "gid_map"):
    with open("/proc/%d/%s" % (pid, name), "w") as f:
        f.write("0 0 4294967295")
os.write(down_w, b"g")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// Asserts `outcome` is `run` refusing with one line that names `setting` and how to allow
/// it, having mounted nothing.
fn assert_refused_naming(stage: &Stage, outcome: &Outcome, setting: &str, context: &str) {
    assert_eq!(
        outcome.code(),
        Some(1),
        "{context}: stderr: {}",
        outcome.stderr
    );
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{context}: one line: {}", outcome.stderr);
    assert!(
        lines[0].starts_with("scopefs: ")
            && lines[0].contains(setting)
            && lines[0].contains("sysctl -w"),
        "{context}: the line names {setting} and how to change it: {}",
        outcome.stderr
    );
    stage.assert_clean(context);
}

#[test]
fn run_names_the_setting_where_user_namespaces_are_disabled_for_root() {
    let stage = Stage::new();
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"")
        .arg("no-userns")
        .arg(&stage.bin)
        .args(["run", "--in-place"])
        .arg(&stage.src)
        .args(["--", "cat", "README"])
        .current_dir(&stage.src)
        .env("PATH", PATH)
        .env("TMPDIR", &stage.tmp);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_refused_naming(&stage, &outcome, "user.max_user_namespaces = 0", "root");
}

#[test]
fn run_names_the_setting_where_user_namespaces_are_disabled_for_a_normal_user() {
    let stage = Stage::new();
    let user = TestUser::create();
    stage.hand_to(&user);
    let helper = stage.work.join("no-userns.py");
    fs::write(&helper, NO_USERNS_AS).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&helper)
        .arg(user.uid.to_string())
        .arg(user.gid.to_string())
        .arg(&stage.bin)
        .args(["run", "--in-place"])
        .arg(&stage.src)
        .args(["--", "cat", "README"])
        .current_dir(&stage.src)
        .env("PATH", PATH)
        .env("TMPDIR", &stage.tmp);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_refused_naming(
        &stage,
        &outcome,
        "user.max_user_namespaces = 0",
        "normal user",
    );
}

/// On this host /dev/fuse is root's only: a normal user's `mount` and `run` say so and how to
/// open it (fusermount3 opens the device with the user's own rights, so it cannot help).
#[test]
fn a_normal_user_is_told_when_fuse_is_closed_to_users() {
    let stage = Stage::new();
    let user = TestUser::create();
    stage.hand_to(&user);
    let mnt = stage.state.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let status = Command::new("chown")
        .arg(user.name.as_str())
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());
    let commands: [Vec<OsString>; 2] = [
        vec![
            stage.bin.clone().into(),
            "mount".into(),
            stage.src.clone().into(),
            mnt.clone().into(),
        ],
        vec![
            stage.bin.clone().into(),
            "run".into(),
            "--in-place".into(),
            stage.src.clone().into(),
            "--".into(),
            "true".into(),
        ],
    ];
    for command in commands {
        let mut cmd = as_user(&stage, &user, "0600", true, &command);
        cmd.current_dir(&stage.src)
            .env("PATH", PATH)
            .env("TMPDIR", &stage.tmp);
        let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
        let context = format!("{:?}", command.get(1));
        assert_eq!(outcome.code(), Some(1), "{context}: {}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .starts_with("scopefs: cannot open /dev/fuse (Permission denied")
                && outcome.stderr.contains("chmod 0666 /dev/fuse")
                && outcome.stderr.lines().count() == 1,
            "{context}: one line saying why and how to open it: {}",
            outcome.stderr
        );
        stage.assert_clean(&context);
    }
}

/// A normal user's views are listed by their own `scopefs status`, without root, from a state
/// directory of their own; `reload` works on them too; and a `run` of theirs, mounted in its
/// own namespaces, is listed as seen only by its command.
#[test]
fn a_normal_user_sees_their_own_views_in_status() {
    let stage = Stage::new();
    let user = TestUser::create();
    stage.hand_to(&user);
    let mnt = stage.state.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let policy = stage.state.join("policy.toml");
    fs::write(&policy, "[view]\nhide = []\n").unwrap();
    for path in [&mnt, &policy] {
        let status = Command::new("chown")
            .arg(user.name.as_str())
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let script = format!(
        "set -e; {bin} mount -c {policy} {src} {mnt}; \
         {bin} status {mnt}; \
         {bin} reload {mnt}; \
         {bin} umount {mnt}; \
         {bin} status; \
         {bin} run {src} -- sh -c 'while [ ! -e \"$TMPDIR/done\" ]; do sleep 0.1; done' & \
         found=no; for i in $(seq 300); do \
           if {bin} status | grep -q 'seen only by the command of'; then found=yes; break; fi; \
           sleep 0.1; \
         done; \
         touch \"$TMPDIR/done\"; wait; echo \"run listed: $found\"",
        bin = stage.bin.display(),
        src = stage.src.display(),
        mnt = mnt.display(),
        policy = policy.display(),
    );
    let command: Vec<OsString> = ["sh", "-c", &script].map(OsString::from).to_vec();
    let mut cmd = as_user(&stage, &user, "0666", true, &command);
    cmd.current_dir(&stage.src)
        .env("PATH", PATH)
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", &stage.tmp);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(
        outcome.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        outcome.stdout,
        outcome.stderr
    );
    let out = &outcome.stdout;
    assert!(
        out.starts_with(&format!("{}  (pid ", mnt.display())),
        "the user's view is listed: {out}"
    );
    assert!(
        out.contains(&format!("  source   {}\n", stage.src.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("reloaded {}: the policy of", mnt.display())),
        "{out}"
    );
    assert!(
        out.contains("no live scopefs views of this user\nrun listed: yes\n"),
        "nothing once unmounted, then the run's view: {out}"
    );
    let dir = PathBuf::from(format!("/tmp/scopefs-{}", user.uid));
    let meta = fs::symlink_metadata(&dir).unwrap();
    assert_eq!(meta.uid(), user.uid, "{} is the user's", dir.display());
    assert_eq!(meta.mode() & 0o777, 0o700, "{} is private", dir.display());
    fs::remove_dir_all(&dir).unwrap();
}

/// Where /dev/fuse is open to users, a normal user's `mount` goes through fusermount3 and
/// `umount` through `fusermount3 -u`.
#[test]
fn a_normal_user_mounts_and_unmounts_through_fusermount3() {
    let stage = Stage::new();
    let user = TestUser::create();
    stage.hand_to(&user);
    let mnt = stage.state.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let status = Command::new("chown")
        .arg(user.name.as_str())
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());
    let script = format!(
        "set -e; {bin} mount {src} {mnt}; \
         grep ' {mnt} ' /proc/self/mountinfo; \
         cat {mnt}/README; \
         if cat {mnt}/.env 2>/dev/null; then echo visible; else echo hidden; fi; \
         {bin} umount {mnt}; \
         if grep -q ' {mnt} ' /proc/self/mountinfo; then echo mounted; else echo unmounted; fi",
        bin = stage.bin.display(),
        src = stage.src.display(),
        mnt = mnt.display(),
    );
    let command: Vec<OsString> = ["sh", "-c", &script].map(OsString::from).to_vec();
    let mut cmd = as_user(&stage, &user, "0666", true, &command);
    cmd.current_dir(&stage.src)
        .env("PATH", PATH)
        .env("TMPDIR", &stage.tmp);
    let outcome = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(outcome.code(), Some(0), "stderr: {}", outcome.stderr);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", outcome.stdout);
    assert!(
        lines[0].contains(" - fuse.scopefs scopefs:")
            && lines[0].contains(&format!("user_id={}", user.uid)),
        "mounted by fusermount3 for the user: {}",
        lines[0]
    );
    assert_eq!(lines[1..], ["the project", "hidden", "unmounted"]);
    assert!(outcome.stderr.is_empty(), "stderr: {}", outcome.stderr);
}
