//! What an agent did in an overlay view, reviewed without the kernel: the changes the view
//! wrote are listed, planned (conflicts and flags), applied into SOURCE or discarded through
//! the library, as `diff`, `apply` and `discard` do (SPEC §4).

use std::fs;

use scopefs::overlay::changes::Op;
use scopefs::overlay::review::{ApplyError, ConflictReason, Plan, Refusal, Review};
use scopefs::overlay::{Overlay, OverlayError};
use scopefs::path::RelPath;

use crate::{Scene, errno, tree};

const OVERLAY: &str = "[writes]\nmode = \"overlay\"\n";

fn p(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap()
}

/// The overlay of `s`, opened for apply or discard (locked).
fn review(s: &Scene) -> Review {
    let overlay = Overlay::open_for_review(&s.overlay, true).unwrap();
    Review::new(overlay).unwrap()
}

fn listed(review: &Review) -> Vec<String> {
    let changes = review.changes().unwrap();
    let line = |c: &scopefs::overlay::changes::Change| format!("{} {}", c.op, c.path);
    changes.iter().map(line).collect()
}

fn conflicts_of(plan: &Plan) -> Vec<(String, ConflictReason)> {
    let conflicts = plan.conflicts.iter();
    conflicts
        .map(|c| (c.path.to_string(), c.reason.clone()))
        .collect()
}

#[test]
fn what_the_view_wrote_is_listed_and_applied_into_source() {
    let s = Scene::new();
    s.file("README", b"hello\n");
    s.file("old/gone.txt", b"bye\n");
    s.file("src/a.rs", b"fn a() {}\n");
    let v = s.view(OVERLAY);
    v.write_at("src/a.rs", 0, b"FN").unwrap();
    assert_eq!(errno(v.create("src/new/b.rs", b"")), libc::ENOENT);
    v.mkdir("src/new", 0o755).unwrap();
    v.create("src/new/b.rs", b"fn b() {}\n").unwrap();
    v.unlink("old/gone.txt").unwrap();
    v.rmdir("old").unwrap();
    v.symlink(b"a.rs", "src/link").unwrap();
    // A live view holds the overlay: nothing may apply it meanwhile.
    let busy = Overlay::open_for_review(&s.overlay, true).unwrap_err();
    assert!(matches!(busy, OverlayError::InUse { .. }), "{busy}");
    drop(v);

    let r = review(&s);
    assert_eq!(
        listed(&r),
        [
            "D old",
            "M src/a.rs",
            "A src/link",
            "A src/new",
            "A src/new/b.rs"
        ]
    );
    let plan = r.plan(&[]).unwrap();
    assert!(plan.conflicts.is_empty() && plan.problems.is_empty());
    let flagged: Vec<_> = plan.flagged().map(|c| c.path.to_string()).collect();
    assert_eq!(flagged, ["src/link"]);
    let mut progress = Vec::new();
    let outcome = r
        .apply(&plan, false, |c, problem| {
            progress.push((c.path.to_string(), problem.map(str::to_owned)))
        })
        .unwrap();
    assert_eq!(outcome.applied.len(), 5);
    assert!(outcome.failed.is_empty() && progress.iter().all(|(_, e)| e.is_none()));
    assert_eq!(fs::read(s.src.join("src/a.rs")).unwrap(), b"FN a() {}\n");
    assert_eq!(
        fs::read(s.src.join("src/new/b.rs")).unwrap(),
        b"fn b() {}\n"
    );
    let link = fs::read_link(s.src.join("src/link")).unwrap();
    assert_eq!(link, std::path::Path::new("a.rs"));
    assert!(!s.src.join("old").exists());
    // Applied entries leave the overlay; a new view shows SOURCE as it now is.
    assert!(r.changes().unwrap().is_empty());
    drop(r);
    let again = s.view(OVERLAY);
    assert_eq!(again.read("src/a.rs").unwrap(), b"FN a() {}\n");
    assert_eq!(again.readdir("").unwrap(), ["README", "src"]);
}

#[test]
fn source_changed_after_the_view_copied_a_file_is_a_conflict() {
    let s = Scene::new();
    s.file("a.txt", b"one\n");
    s.file("b.txt", b"one\n");
    let v = s.view(OVERLAY);
    v.write_at("a.txt", 0, b"TWO\n").unwrap();
    v.write_at("b.txt", 0, b"TWO\n").unwrap();
    drop(v);
    // Someone edits SOURCE's a.txt while the changes wait for review.
    std::thread::sleep(std::time::Duration::from_millis(10));
    s.file("a.txt", b"edited in SOURCE\n");
    let r = review(&s);
    let plan = r.plan(&[]).unwrap();
    let conflicts = conflicts_of(&plan);
    assert_eq!(conflicts, [("a.txt".to_owned(), ConflictReason::Changed)]);
    let before = tree(&s.src);
    let refused = r.apply(&plan, false, |_, _| {}).unwrap_err();
    assert!(matches!(
        refused,
        ApplyError::Refused(Refusal::Conflicts(1))
    ));
    assert_eq!(tree(&s.src), before, "a refused plan changed SOURCE");
    // The path without a conflict alone may go; the other one only by force.
    let b_only = r.plan(&[p("b.txt")]).unwrap();
    assert!(b_only.conflicts.is_empty());
    r.apply(&b_only, false, |_, _| {}).unwrap();
    assert_eq!(fs::read(s.src.join("b.txt")).unwrap(), b"TWO\n");
    let plan = r.plan(&[]).unwrap();
    assert_eq!(plan.changes.len(), 1);
    r.apply(&plan, true, |_, _| {}).unwrap();
    assert_eq!(fs::read(s.src.join("a.txt")).unwrap(), b"TWO\n");
}

#[test]
fn a_deleted_directory_never_takes_the_entries_the_view_hid() {
    let s = Scene::new();
    s.file("conf/settings.toml", b"x = 1\n");
    s.file("conf/.env", b"SECRET=1\n");
    let v = s.view(OVERLAY);
    v.unlink("conf/settings.toml").unwrap();
    v.rmdir("conf").unwrap();
    drop(v);
    let r = review(&s);
    assert_eq!(listed(&r), ["D conf"]);
    let plan = r.plan(&[]).unwrap();
    let conflicts = conflicts_of(&plan);
    assert_eq!(
        conflicts,
        [("conf/.env".to_owned(), ConflictReason::HiddenInSource)]
    );
    // The deletion is withheld: not applied even when forced, and kept in the overlay.
    assert!(plan.changes.is_empty());
    assert_eq!(plan.withheld.len(), 1);
    assert_eq!(plan.withheld[0].op, Op::Delete);
    assert!(r.apply(&plan, false, |_, _| {}).is_err());
    r.apply(&plan, true, |_, _| {}).unwrap();
    assert_eq!(fs::read(s.src.join("conf/.env")).unwrap(), b"SECRET=1\n");
    assert_eq!(listed(&r), ["D conf"]);
}

#[test]
fn discarded_changes_leave_the_view_showing_source() {
    let s = Scene::new();
    s.file("keep.txt", b"source\n");
    s.file("drop.txt", b"source\n");
    let v = s.view(OVERLAY);
    v.write_at("keep.txt", 0, b"VIEW\n").unwrap();
    v.write_at("drop.txt", 0, b"VIEW\n").unwrap();
    v.unlink("keep.txt").unwrap();
    v.create("keep.txt", b"made again\n").unwrap();
    drop(v);
    let r = review(&s);
    let dropped = r.discard(&[p("drop.txt")]).unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(listed(&r), ["M keep.txt"]);
    drop(r);
    let v = s.view(OVERLAY);
    assert_eq!(v.read("drop.txt").unwrap(), b"source\n");
    assert_eq!(v.read("keep.txt").unwrap(), b"made again\n");
    drop(v);
    review(&s).discard(&[]).unwrap();
    let v = s.view(OVERLAY);
    assert_eq!(v.read("keep.txt").unwrap(), b"source\n");
    assert_eq!(fs::read(s.src.join("drop.txt")).unwrap(), b"source\n");
}

/// A directory deletion still pending keeps the records of what lay beneath it when another
/// path is applied or discarded first: applying it later needs no `--force`.
#[test]
fn a_pending_directory_deletion_survives_a_partial_apply_and_a_discard() {
    let s = Scene::new();
    s.file("d/a.txt", b"a\n");
    s.file("d/sub/b.txt", b"b\n");
    s.file("x.txt", b"x\n");
    s.file("y.txt", b"y\n");
    let v = s.view(OVERLAY);
    v.unlink("d/sub/b.txt").unwrap();
    v.rmdir("d/sub").unwrap();
    v.unlink("d/a.txt").unwrap();
    v.rmdir("d").unwrap();
    v.write_at("x.txt", 0, b"X").unwrap();
    v.write_at("y.txt", 0, b"Y").unwrap();
    drop(v);
    let r = review(&s);
    let only_x = r.plan(&[p("x.txt")]).unwrap();
    r.apply(&only_x, false, |_, _| {}).unwrap();
    r.discard(&[p("y.txt")]).unwrap();
    assert_eq!(listed(&r), ["D d"]);
    let plan = r.plan(&[]).unwrap();
    assert_eq!(conflicts_of(&plan), []);
    r.apply(&plan, false, |_, _| {}).unwrap();
    assert!(!s.src.join("d").exists());
    assert_eq!(fs::read(s.src.join("x.txt")).unwrap(), b"X\n");
    assert_eq!(fs::read(s.src.join("y.txt")).unwrap(), b"y\n");
}
