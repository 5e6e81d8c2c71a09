//! Makes one thread of a running process perform a system call of the test's choosing, with
//! ptrace, the way a debugger's `call` does: stop the thread where it waits in a system call,
//! point it at that system call's own `syscall` instruction with other registers, run it to the
//! end of the call, read the result, and put everything back so that the interrupted call
//! starts again. Only root (CAP_SYS_PTRACE) may do this to the daemon, which is not dumpable.
//!
//! This is how the tests see what the daemon's own threads may do (Landlock confines threads,
//! not processes, and leaves no trace in /proc). Only x86_64's registers are known here.

use std::ffi::CString;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

/// A thread of another process, stopped in a system call, until [`Stopped::resume`].
pub struct Stopped {
    tid: libc::pid_t,
    /// Its registers when it stopped.
    saved: libc::user_regs_struct,
    /// The address of the `syscall` instruction it was executing.
    syscall_at: u64,
    /// Memory written below its stack pointer, with what was there before.
    scribbled: Vec<(u64, i64)>,
    resumed: bool,
}

/// `syscall` on x86_64: 0f 05, read as a little-endian word.
const SYSCALL_INSN: u64 = 0x050f;
/// The codes a system call interrupted by a stop leaves in rax, asking to be restarted.
const ERESTARTSYS: i64 = 512;
const ERESTARTNOINTR: i64 = 513;
const ERESTARTNOHAND: i64 = 514;
const ERESTART_RESTARTBLOCK: i64 = 516;
const NR_RESTART_SYSCALL: u64 = 219;

fn check(rc: libc::c_long, what: &str) -> io::Result<libc::c_long> {
    if rc == -1 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(rc)
    }
}

fn ptrace(req: libc::c_uint, tid: libc::pid_t, addr: u64, data: u64, what: &str) -> io::Result<()> {
    // SAFETY: ptrace requests here pass integers or a pointer to a live local register
    // struct, which the kernel reads or fills.
    check(unsafe { libc::ptrace(req, tid, addr, data) }, what).map(drop)
}

fn wait_stop(tid: libc::pid_t, what: &str) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a live local.
    let rc = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
    check(rc.into(), what)?;
    if !libc::WIFSTOPPED(status) {
        return Err(io::Error::other(format!(
            "{what}: thread {tid} did not stop (status {status:#x})"
        )));
    }
    Ok(status)
}

fn regs(tid: libc::pid_t) -> io::Result<libc::user_regs_struct> {
    // SAFETY: an all-zero register struct is valid; PTRACE_GETREGS fills it.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    ptrace(
        libc::PTRACE_GETREGS,
        tid,
        0,
        std::ptr::addr_of_mut!(r) as u64,
        "PTRACE_GETREGS",
    )?;
    Ok(r)
}

fn set_regs(tid: libc::pid_t, r: &libc::user_regs_struct) -> io::Result<()> {
    ptrace(
        libc::PTRACE_SETREGS,
        tid,
        0,
        std::ptr::addr_of!(*r) as u64,
        "PTRACE_SETREGS",
    )
}

fn peek(tid: libc::pid_t, addr: u64) -> io::Result<i64> {
    // PEEKDATA returns the word itself, so -1 is only an error when errno says so.
    // SAFETY: errno is thread-local; PEEKDATA reads the tracee's memory, not ours.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: as above.
    let word = unsafe { libc::ptrace(libc::PTRACE_PEEKDATA, tid, addr, 0u64) };
    if word == -1 && io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(io::Error::last_os_error());
    }
    Ok(word)
}

impl Stopped {
    /// Stops thread `tid` (of any process) where it waits in a system call. A thread that is
    /// running instead is let go and tried again, for up to ten seconds.
    pub fn seize(tid: libc::pid_t) -> io::Result<Stopped> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            ptrace(
                libc::PTRACE_SEIZE,
                tid,
                0,
                libc::PTRACE_O_TRACESYSGOOD as u64,
                "PTRACE_SEIZE",
            )?;
            ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0, "PTRACE_INTERRUPT")?;
            wait_stop(tid, "waiting for the interrupted thread")?;
            let saved = regs(tid)?;
            let in_syscall = (saved.orig_rax as i64) >= 0;
            let syscall_at = saved.rip.wrapping_sub(2);
            if in_syscall && (peek(tid, syscall_at)? as u64) & 0xffff == SYSCALL_INSN {
                return Ok(Stopped {
                    tid,
                    saved,
                    syscall_at,
                    scribbled: Vec::new(),
                    resumed: false,
                });
            }
            ptrace(libc::PTRACE_DETACH, tid, 0, 0, "PTRACE_DETACH")?;
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "thread {tid} was never found waiting in a system call"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes `bytes` into the thread's stack, well below its stack pointer (past the red
    /// zone), and returns their address. Undone by [`Stopped::resume`].
    fn scribble(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let below = 8192 + bytes.len() as u64;
        let addr = (self.saved.rsp - below) & !7;
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let at = addr + 8 * i as u64;
            let old = peek(self.tid, at)?;
            self.scribbled.push((at, old));
            let mut word = old.to_ne_bytes();
            word[..chunk.len()].copy_from_slice(chunk);
            ptrace(
                libc::PTRACE_POKEDATA,
                self.tid,
                at,
                i64::from_ne_bytes(word) as u64,
                "PTRACE_POKEDATA",
            )?;
        }
        Ok(addr)
    }

    /// Makes the thread call system call `nr` with `args`; returns what the call returned
    /// (a negative errno on failure).
    pub fn syscall(&mut self, nr: i64, args: [u64; 6]) -> io::Result<i64> {
        let mut r = self.saved;
        r.rip = self.syscall_at;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) =
            (args[0], args[1], args[2], args[3], args[4], args[5]);
        set_regs(self.tid, &r)?;
        ptrace(
            libc::PTRACE_SYSCALL,
            self.tid,
            0,
            0,
            "PTRACE_SYSCALL (entry)",
        )?;
        wait_stop(self.tid, "waiting for the system call to start")?;
        ptrace(
            libc::PTRACE_SYSCALL,
            self.tid,
            0,
            0,
            "PTRACE_SYSCALL (exit)",
        )?;
        wait_stop(self.tid, "waiting for the system call to end")?;
        Ok(regs(self.tid)?.rax as i64)
    }

    /// `openat(AT_FDCWD, path, flags)` in the thread: the descriptor, or the errno it failed with.
    pub fn open(&mut self, path: &std::path::Path, flags: i32) -> io::Result<Result<i32, i32>> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
        let addr = self.scribble(c.as_bytes_with_nul())?;
        let rc = self.syscall(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as u64,
                addr,
                (flags | libc::O_CLOEXEC) as u64,
                0o600,
                0,
                0,
            ],
        )?;
        Ok(if rc < 0 {
            Err(-rc as i32)
        } else {
            Ok(rc as i32)
        })
    }

    /// `close(fd)` in the thread.
    pub fn close(&mut self, fd: i32) -> io::Result<()> {
        let rc = self.syscall(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc as i32));
        }
        Ok(())
    }

    /// Puts memory and registers back, with the interrupted system call set to start again,
    /// and lets the thread go.
    pub fn resume(mut self) -> io::Result<()> {
        self.resumed = true;
        self.restore()
    }

    fn restore(&mut self) -> io::Result<()> {
        for &(at, old) in self.scribbled.iter().rev() {
            ptrace(
                libc::PTRACE_POKEDATA,
                self.tid,
                at,
                old as u64,
                "PTRACE_POKEDATA (restore)",
            )?;
        }
        self.scribbled.clear();
        let mut r = self.saved;
        match -(r.rax as i64) {
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                r.rip = self.syscall_at;
                r.rax = r.orig_rax;
            }
            ERESTART_RESTARTBLOCK => {
                r.rip = self.syscall_at;
                r.rax = NR_RESTART_SYSCALL;
            }
            _ => {}
        }
        r.orig_rax = u64::MAX;
        set_regs(self.tid, &r)?;
        ptrace(libc::PTRACE_DETACH, self.tid, 0, 0, "PTRACE_DETACH")
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = self.restore();
        }
    }
}

/// The threads of process `pid` whose name starts with `prefix`.
pub fn threads_named(pid: i32, prefix: &str) -> Vec<libc::pid_t> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// The Landlock ABI version the running kernel offers; 0 without Landlock.
pub fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: u64 = 1;
    // SAFETY: with a null attribute pointer and size 0 the call only reports the version.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    rc.max(0)
}
