//! A reference model of the overlay: random sequences of file-system operations on visible,
//! writable paths are applied to an overlay mount and to a plain directory seeded with the same
//! visible tree. Every operation must give the same result (success or errno), and afterwards
//! both trees must show the same names, types, contents, modes and symlink targets, while
//! SOURCE never changes. (The view after a remount is checked in overlay.rs.)
//!
//! The one permitted difference: renaming a directory that exists in SOURCE is EXDEV in the
//! overlay (as with overlayfs). There the test does what `mv` does — copy, then delete — and
//! the model simply renames.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::common::*;
use crate::support::*;

const NAMES: [&str; 3] = ["a", "b", "c"];
/// chmod modes; the setuid and setgid bits are always stripped (SPEC §3).
const MODES: [u32; 7] = [0o644, 0o600, 0o755, 0o700, 0o640, 0o4755, 0o2750];
const SETID: u32 = 0o6000;

#[derive(Debug, Clone)]
enum Op {
    /// `echo … > path`: create or truncate, then write.
    Create(String, u8),
    /// Write a few bytes at an offset into an existing file.
    Write(String, u8, u8),
    Truncate(String, u8),
    Rename(String, String),
    Unlink(String),
    Mkdir(String),
    Rmdir(String),
    /// A relative symlink to a sibling (index into the names).
    Symlink(String, u8),
    Chmod(String, u8),
}

/// A path of one or two components over a three-letter alphabet.
fn rel() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&NAMES[..]).prop_map(str::to_owned),
        (
            prop::sample::select(&NAMES[..]),
            prop::sample::select(&NAMES[..])
        )
            .prop_map(|(a, b)| format!("{a}/{b}")),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (rel(), any::<u8>()).prop_map(|(p, s)| Op::Create(p, s)),
        (rel(), any::<u8>(), any::<u8>()).prop_map(|(p, o, s)| Op::Write(p, o, s)),
        (rel(), any::<u8>()).prop_map(|(p, n)| Op::Truncate(p, n)),
        (rel(), rel()).prop_map(|(a, b)| Op::Rename(a, b)),
        rel().prop_map(Op::Unlink),
        rel().prop_map(Op::Mkdir),
        rel().prop_map(Op::Rmdir),
        (rel(), any::<u8>()).prop_map(|(p, t)| Op::Symlink(p, t)),
        (rel(), any::<u8>()).prop_map(|(p, m)| Op::Chmod(p, m)),
    ]
}

/// The target of a symlink: a sibling. Links that point up (`../a`) are left out: moved to
/// the root by a rename they would leave SOURCE, which the view must not show
/// (rules.rs checks that case).
fn link_target(pick: u8) -> &'static str {
    NAMES[usize::from(pick) % NAMES.len()]
}

fn contents(seed: u8) -> Vec<u8> {
    format!("c{seed}\n")
        .repeat(usize::from(seed % 5) + 1)
        .into_bytes()
}

/// The visible tree both sides start from; SOURCE also gets hidden entries the model lacks.
fn seed(root: &Path, hidden: bool) {
    fs::write(root.join("a"), b"seed a\n").unwrap();
    fs::create_dir(root.join("b")).unwrap();
    fs::write(root.join("b/a"), b"seed b/a\n").unwrap();
    fs::create_dir(root.join("b/b")).unwrap();
    std::os::unix::fs::symlink("a", root.join("c")).unwrap();
    if hidden {
        fs::write(root.join(".env"), b"SECRET=1\n").unwrap();
        fs::write(root.join("b/.env"), b"SECRET=2\n").unwrap();
    }
}

/// Applies one operation below `root`.
fn apply(root: &Path, op: &Op) -> io::Result<()> {
    let p = |r: &str| root.join(r);
    match op {
        Op::Create(path, s) => {
            let mut f = fs::File::create(p(path))?;
            f.write_all(&contents(*s))
        }
        Op::Write(path, off, s) => {
            let f = fs::OpenOptions::new().write(true).open(p(path))?;
            f.write_all_at(format!("w{s}").as_bytes(), u64::from(off % 16))
        }
        Op::Truncate(path, n) => truncate(&p(path), i64::from(n % 32)),
        Op::Rename(from, to) => fs::rename(p(from), p(to)),
        Op::Unlink(path) => fs::remove_file(p(path)),
        Op::Mkdir(path) => fs::create_dir(p(path)),
        Op::Rmdir(path) => fs::remove_dir(p(path)),
        Op::Symlink(path, t) => std::os::unix::fs::symlink(link_target(*t), p(path)),
        Op::Chmod(path, m) => {
            let mode = MODES[usize::from(*m) % MODES.len()];
            fs::set_permissions(p(path), fs::Permissions::from_mode(mode))
        }
    }
}

/// The model's version: the same, with setuid/setgid stripped as SPEC says the view does.
fn apply_model(root: &Path, op: &Op) -> io::Result<()> {
    match op {
        Op::Chmod(path, m) => {
            let mode = MODES[usize::from(*m) % MODES.len()] & !SETID;
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(mode))
        }
        _ => apply(root, op),
    }
}

/// What `mv` does when rename(2) says EXDEV: copy the tree, then remove the original.
fn copy_then_delete(from: &Path, to: &Path) -> io::Result<()> {
    if fs::symlink_metadata(to).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir(to)?;
    }
    copy_tree(from, to)?;
    fs::remove_dir_all(from)
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)
    } else if ft.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, meta.permissions())
    } else {
        fs::write(to, fs::read(from)?)?;
        fs::set_permissions(to, meta.permissions())
    }
}

fn check_sequence(ops: &[Op]) -> Result<(), TestCaseError> {
    let r = Rig::new(Mode::Overlay);
    seed(&r.scene.src, true);
    let model = r.scene.base().join("model");
    fs::create_dir(&model).unwrap();
    seed(&model, false);
    let before = tree_digest(&r.scene.src);
    let args = vec!["--overlay".to_owned(), r.overlay().display().to_string()];
    let mut log = Vec::new();
    let mut failure = None;
    {
        let m = r.mount(&args);
        prop_assert_eq!(
            snapshot(m.mnt()),
            snapshot(&model),
            "the seeded trees differ"
        );
        for op in ops {
            let mut got = apply(m.mnt(), op);
            let want = apply_model(&model, op);
            let mut note = "";
            if let (Op::Rename(from, to), Some(libc::EXDEV)) =
                (op, got.as_ref().err().and_then(io::Error::raw_os_error))
            {
                note = " (EXDEV, copied)";
                got = copy_then_delete(&m.m(from), &m.m(to));
            }
            log.push(format!(
                "{op:?}: view {}{note}, model {}",
                outcome(&got),
                outcome(&want)
            ));
            if outcome(&got) != outcome(&want) {
                failure = Some("an operation's result differs");
                break;
            }
        }
        if failure.is_none() && snapshot(m.mnt()) != snapshot(&model) {
            failure = Some("the trees differ");
        }
        if failure.is_some() {
            let view = snapshot(m.mnt());
            let want = snapshot(&model);
            return Err(TestCaseError::fail(format!(
                "{}\nops:\n{}\nview:  {view:?}\nmodel: {want:?}",
                failure.unwrap_or_default(),
                log.join("\n")
            )));
        }
    }
    prop_assert!(
        tree_change(&before, &tree_digest(&r.scene.src)).is_none(),
        "SOURCE changed: {:?}",
        tree_change(&before, &tree_digest(&r.scene.src))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn overlay_behaves_like_a_plain_directory(ops in prop::collection::vec(op(), 1..=40)) {
        check_sequence(&ops)?;
    }
}
