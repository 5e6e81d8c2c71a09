//! The audit log (SPEC §6) through a real mount: refused writes and lookups of hidden names
//! that exist are recorded with the rule that decided; probes of absent names are not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::time::Duration;

use common::*;

fn read_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn denied_unlink_and_hidden_lookup_are_logged_absent_names_are_not() {
    require_fuse();
    let s = Scene::new();
    s.file("a.txt");
    s.file_with(".env", b"SECRET=1\n");
    let log = s.base().join("audit.jsonl");
    let m = s.mount(&["--audit-log", log.to_str().unwrap()]);

    for _ in 0..3 {
        assert_errno(fs::remove_file(m.m("a.txt")), libc::EROFS, "unlink a.txt");
    }
    assert_errno(fs::read(m.m(".env")), libc::ENOENT, "read .env");
    assert_errno(
        fs::read(m.m("no-such-file")),
        libc::ENOENT,
        "read no-such-file",
    );
    drop(m);

    let lines = read_log(&log);
    let unlink: Vec<_> = lines.iter().filter(|l| l["op"] == "unlink").collect();
    assert_eq!(unlink.len(), 1, "repeats collapse into one line: {lines:?}");
    let unlink = unlink[0];
    assert_eq!(unlink["event"], "denied");
    assert_eq!(unlink["path"], "a.txt");
    assert_eq!(unlink["errno"], "EROFS");
    assert_eq!(unlink["rule"], "writes.mode=deny");
    assert_eq!(unlink["count"], 3);
    assert!(
        !unlink["comm"].as_str().unwrap().is_empty(),
        "comm names the program"
    );
    assert!(unlink["pid"].as_u64().unwrap() > 0);
    assert_eq!(unlink["uid"], 0);
    assert!(unlink["time"].as_str().unwrap().ends_with('Z'));

    let env: Vec<_> = lines.iter().filter(|l| l["path"] == ".env").collect();
    assert!(
        !env.is_empty(),
        "the lookup of the hidden .env is logged: {lines:?}"
    );
    assert!(
        env.iter()
            .all(|l| l["event"] == "denied" && l["errno"] == "ENOENT")
    );
    assert!(
        env.iter()
            .any(|l| l["op"] == "lookup" && l["rule"] == "preset secrets: \".env\""),
        "the rule that hid .env is named: {env:?}"
    );
    assert!(
        lines.iter().all(|l| l["path"] != "no-such-file"),
        "a probe of a name that does not exist is not logged: {lines:?}"
    );
}

#[test]
fn writes_events_record_changes_in_an_overlay() {
    require_fuse();
    let s = Scene::new();
    s.file("a.txt");
    let log = s.base().join("audit.jsonl");
    let overlay = s.base().join("overlay");
    let policy = s.policy(&format!(
        "[writes]\nmode = \"overlay\"\noverlay = {:?}\n[audit]\nlog = {:?}\nevents = \"writes\"\n",
        overlay.to_str().unwrap(),
        log.to_str().unwrap()
    ));
    let m = s.mount(&["-c", policy.to_str().unwrap()]);
    fs::write(m.m("new.txt"), b"hello").unwrap();
    assert_errno(
        fs::write(m.m(".env"), b"x"),
        libc::EACCES,
        "create .env in an overlay",
    );
    drop(m);
    std::thread::sleep(Duration::from_millis(10));
    let lines = read_log(&log);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "write" && l["path"] == "new.txt"),
        "the new file is logged as a write: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["event"] == "denied"
            && l["path"] == ".env"
            && l["errno"] == "EACCES"
            && l["rule"] == "preset secrets: \".env\""),
        "creating the hidden .env is a denial naming the preset: {lines:?}"
    );
}
