//! `--cache auto` (the default): the kernel keeps entries, absences, attributes, listings
//! and data for long, and every change made underneath (in SOURCE, not through the view) is
//! told to it at once. Each check runs well inside the one-second cache time that applies
//! where no watch is in place, so only the notifications can make it pass.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// Time allowed for a change underneath to show: far less than the unwatched cache time.
const PROMPTLY: Duration = Duration::from_millis(600);

/// Polls `check` until it holds or [`PROMPTLY`] has passed since `since`.
fn promptly(since: Instant, what: &str, mut check: impl FnMut() -> bool) {
    loop {
        if check() {
            return;
        }
        assert!(
            since.elapsed() < PROMPTLY,
            "{what}: not seen through the view within {PROMPTLY:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn absent(path: &std::path::Path) -> bool {
    matches!(fs::symlink_metadata(path), Err(e) if e.kind() == ErrorKind::NotFound)
}

#[test]
fn changes_underneath_show_at_once() {
    let s = Scene::new();
    s.file_with("a.txt", b"one\n");
    s.file("sub/c.txt");
    s.file("sub/d.txt");
    s.file("moved/x.txt");
    let _m = s.mount(&[]);

    // Fill every cache: data, attributes, a listing, absences, a directory's entries.
    assert_eq!(fs::read(s.m("a.txt")).unwrap(), b"one\n");
    assert_listing(&s.m("sub"), &["c.txt", "d.txt"]);
    assert!(absent(&s.m("new.txt")));
    assert!(absent(&s.m("sub/new")));
    assert!(fs::metadata(s.m("moved/x.txt")).is_ok());
    let mode = fs::metadata(s.m("sub/d.txt")).unwrap().permissions().mode();

    let since = Instant::now();
    fs::write(s.s("a.txt"), b"two, longer\n").unwrap();
    fs::write(s.s("new.txt"), b"new\n").unwrap();
    fs::remove_file(s.s("sub/c.txt")).unwrap();
    fs::create_dir(s.s("sub/new")).unwrap();
    fs::set_permissions(s.s("sub/d.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::rename(s.s("moved"), s.s("renamed")).unwrap();

    promptly(since, "a file rewritten", || {
        fs::read(s.m("a.txt")).is_ok_and(|d| d == b"two, longer\n")
    });
    promptly(since, "a file created where a lookup had failed", || {
        fs::read(s.m("new.txt")).is_ok_and(|d| d == b"new\n")
    });
    promptly(since, "a listing after a removal and a mkdir", || {
        listing(&s.m("sub")) == ["d.txt", "new"]
    });
    promptly(since, "a chmod", || {
        fs::metadata(s.m("sub/d.txt")).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o600)
    });
    assert_ne!(mode & 0o777, 0o600);
    promptly(since, "a renamed directory", || {
        absent(&s.m("moved/x.txt")) && fs::metadata(s.m("renamed/x.txt")).is_ok()
    });
}

#[test]
fn files_made_hidden_underneath_stay_hidden() {
    let s = Scene::new();
    s.file("a.txt");
    let _m = s.mount(&[]);
    assert!(absent(&s.m(".env")));
    assert_listing(&s.mnt, &["a.txt"]);

    let since = Instant::now();
    s.file(".env");
    s.file("b.txt");
    promptly(since, "a new visible file listed", || {
        listing(&s.mnt) == ["a.txt", "b.txt"]
    });
    assert_hidden(&s.mnt, ".env");
    assert_listing(&s.mnt, &["a.txt", "b.txt"]);
}

#[test]
fn a_directory_replaced_underneath_is_looked_at_again() {
    let s = Scene::new();
    s.file_with("d/f.txt", b"in d\n");
    let _m = s.mount(&[]);
    assert_eq!(fs::read(s.m("d/f.txt")).unwrap(), b"in d\n");

    let since = Instant::now();
    fs::rename(s.s("d"), s.s("d.old")).unwrap();
    s.file_with("d/f.txt", b"another d\n");
    promptly(since, "a directory swapped for another", || {
        fs::read(s.m("d/f.txt")).is_ok_and(|d| d == b"another d\n")
    });
    promptly(since, "the listing of both", || {
        listing(&s.mnt) == ["d", "d.old"]
    });
}

#[test]
fn a_file_replaced_underneath_is_read_afresh() {
    let s = Scene::new();
    s.file_with("a.txt", b"old\n");
    let _m = s.mount(&[]);
    assert_eq!(fs::read(s.m("a.txt")).unwrap(), b"old\n");

    let since = Instant::now();
    s.file_with("a.tmp", b"new, from another file\n");
    fs::rename(s.s("a.tmp"), s.s("a.txt")).unwrap();
    promptly(since, "a file renamed over another", || {
        fs::read(s.m("a.txt")).is_ok_and(|d| d == b"new, from another file\n")
    });
    promptly(since, "the listing without the temporary name", || {
        listing(&s.mnt) == ["a.txt"]
    });
}

/// How many times anyone has told the kernel to drop its caches (`/proc/sys/vm/drop_caches`,
/// counted in /proc/vmstat): a benchmark's cold passes do, and then no view keeps anything.
fn caches_dropped() -> u64 {
    fs::read_to_string("/proc/vmstat")
        .expect("read /proc/vmstat")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| *k == "drop_pagecache" || *k == "drop_slab")
        .map(|(_, v)| v.trim().parse::<u64>().unwrap_or(0))
        .sum()
}

/// `--cache always` keeps entries, attributes, absences, listings and data for a day: a
/// change made underneath does not show (README: for a SOURCE nothing but the view changes)
/// until a SIGHUP reload makes the kernel forget everything. A run during which something
/// else made the kernel drop its caches proves nothing and is tried again, up to ten times.
#[test]
fn cache_always_keeps_what_it_saw_until_a_reload() {
    for attempt in 1..=10 {
        let dropped = caches_dropped();
        match cache_always_case() {
            Ok(()) => return,
            Err(shown) if caches_dropped() != dropped => {
                eprintln!(
                    "attempt {attempt}: the kernel's caches were dropped meanwhile (showed {shown}); again"
                );
            }
            Err(shown) => panic!("--cache always showed a change made underneath: {shown}"),
        }
    }
    panic!(
        "ten attempts in a row saw the kernel's caches dropped (/proc/sys/vm/drop_caches, by a \
         benchmark?): run this test when nothing else does that"
    );
}

/// One run of [`cache_always_keeps_what_it_saw_until_a_reload`]; `Err` describes what the
/// view showed of the change made underneath.
fn cache_always_case() -> Result<(), String> {
    let s = Scene::new();
    s.file_with("a.txt", b"one\n");
    s.file("sub/c.txt");
    let m = s.mount(&["--cache", "always"]);
    let seen = || {
        (
            fs::read(s.m("a.txt")).ok(),
            fs::metadata(s.m("a.txt")).map(|m| m.len()).ok(),
            listing(&s.m("sub")),
            absent(&s.m("new.txt")),
        )
    };
    let before = seen();
    assert_eq!(
        before,
        (Some(b"one\n".to_vec()), Some(4), vec!["c.txt".into()], true)
    );

    fs::write(s.s("a.txt"), b"two, longer\n").unwrap();
    fs::write(s.s("new.txt"), b"new\n").unwrap();
    s.file("sub/d.txt");
    // Three times as long as `auto` takes to show the same changes without watches, and far
    // longer than it takes with them: `always` must still show what it saw.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let now = seen();
        if now != before {
            return Err(format!("{now:?} where it had seen {before:?}"));
        }
        thread::sleep(Duration::from_millis(100));
    }

    signal(m.pid, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = (
        Some(b"two, longer\n".to_vec()),
        Some(12),
        vec!["c.txt".into(), "d.txt".into()],
        false,
    );
    while seen() != after {
        assert!(
            Instant::now() < deadline,
            "30 s after SIGHUP the view still shows {:?}",
            seen()
        );
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `--cache always` in a writable view: what changes through the view shows at once.
#[test]
fn cache_always_shows_changes_made_through_the_view() {
    let s = Scene::new();
    s.file_with("a.txt", b"one\n");
    let overlay = s.base().join("overlay");
    let _m = s.mount(&["--cache", "always", "--overlay", overlay.to_str().unwrap()]);
    assert_eq!(fs::read(s.m("a.txt")).unwrap(), b"one\n");
    assert_listing(&s.mnt, &["a.txt"]);
    fs::write(s.m("a.txt"), b"two, longer\n").unwrap();
    fs::write(s.m("b.txt"), b"b\n").unwrap();
    assert_eq!(fs::read(s.m("a.txt")).unwrap(), b"two, longer\n");
    assert_eq!(fs::metadata(s.m("a.txt")).unwrap().len(), 12);
    assert_listing(&s.mnt, &["a.txt", "b.txt"]);
}

/// Where no inotify watch is possible (here SOURCE is itself a FUSE file system: another
/// view), `auto` keeps entries, attributes and data for one second only, so changes made
/// underneath show within a second or two.
#[test]
fn without_watches_changes_show_after_the_short_cache_time() {
    let inner = Scene::new();
    inner.file_with("a.txt", b"one\n");
    inner.file("b.txt");
    let _inner = inner.mount(&[]);
    let mut outer = Scene::new();
    outer.src = inner.mnt.clone();
    let _outer = outer.mount(&[]);
    assert_eq!(fs::read(outer.m("a.txt")).unwrap(), b"one\n");
    assert_listing(&outer.mnt, &["a.txt", "b.txt"]);
    assert!(absent(&outer.m("c.txt")));

    let since = Instant::now();
    fs::write(inner.s("a.txt"), b"two, longer\n").unwrap();
    inner.file("c.txt");
    fs::rename(inner.s("b.txt"), inner.s(".env")).unwrap();
    // One second of cache, plus room for a loaded machine; the watched TTL is a minute.
    let bound = Duration::from_secs(10);
    loop {
        let shown = fs::read(outer.m("a.txt")).is_ok_and(|d| d == b"two, longer\n")
            && listing(&outer.mnt) == ["a.txt", "c.txt"]
            && absent(&outer.m("b.txt"));
        if shown {
            break;
        }
        assert!(
            since.elapsed() < bound,
            "changes under an unwatchable SOURCE did not show within {bound:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    println!(
        "an unwatchable SOURCE's changes showed after {:?}",
        since.elapsed()
    );
    assert_hidden(&outer.mnt, ".env");
}
