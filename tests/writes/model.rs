//! A reference model of the overlay: random sequences of file-system operations on visible,
//! writable paths are applied to an overlay view and to a plain directory seeded with the same
//! visible tree. Every operation must give the same result (success or errno), and afterwards
//! both trees must show the same names, types, contents, modes and symlink targets, while
//! SOURCE never changes. (The view after a remount is checked in overlay.rs.)
//!
//! One model, two backends: the view reached through a real FUSE mount (system calls on the
//! mountpoint), and the same view driven directly, without the kernel, through the harness of
//! tests/view (which walks paths and makes the kernel's own checks as the kernel would). The
//! second runs many more cases in the time the first takes for a few.
//!
//! The one permitted difference: renaming a directory that exists in SOURCE is EXDEV in the
//! overlay (as with overlayfs). There the test does what `mv` does — copy, then delete — and
//! the model simply renames.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::common::*;
use crate::harness::Harness;
use crate::support::*;

const NAMES: [&str; 3] = ["a", "b", "c"];
/// chmod modes; the setuid and setgid bits are stripped but on directories (SPEC §3).
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
        (rel(), 0..NAMES.len() as u8).prop_map(|(p, t)| Op::Symlink(p, t)),
        (rel(), any::<u8>()).prop_map(|(p, m)| Op::Chmod(p, m)),
    ]
}

/// Symlink targets: the random sequences use siblings only (the first three). Links that
/// point up (`../a`) would lead out of the view and the model alike once moved to the root,
/// where the two sides resolve them differently; the regression cases below use one without
/// following it (in an overlay view a link the agent made is its own wherever it moves, SPEC
/// §3a).
const TARGETS: [&str; 4] = ["a", "b", "c", "../a"];

/// The target of a symlink (random sequences pick among the siblings only).
fn link_target(pick: u8) -> &'static str {
    TARGETS[usize::from(pick) % TARGETS.len()]
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
            // A directory keeps its setuid and setgid bits (SPEC §3).
            let strip = match fs::metadata(root.join(path)) {
                Ok(meta) if meta.is_dir() => 0,
                _ => SETID,
            };
            let mode = MODES[usize::from(*m) % MODES.len()] & !strip;
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

/// A tree the operations are applied to: the model's plain directory, or the view.
trait Tree {
    fn apply(&mut self, op: &Op) -> io::Result<()>;
    /// What `mv` does when rename(2) says EXDEV.
    fn copy_then_delete(&mut self, from: &str, to: &str) -> io::Result<()>;
    fn snapshot(&mut self) -> BTreeMap<String, String>;
}

/// A directory reached through system calls: the view's mountpoint.
struct Mounted<'a>(&'a Path);

impl Tree for Mounted<'_> {
    fn apply(&mut self, op: &Op) -> io::Result<()> {
        apply(self.0, op)
    }
    fn copy_then_delete(&mut self, from: &str, to: &str) -> io::Result<()> {
        copy_then_delete(&self.0.join(from), &self.0.join(to))
    }
    fn snapshot(&mut self) -> BTreeMap<String, String> {
        snapshot(self.0)
    }
}

/// The view driven directly, without the kernel.
impl Tree for Harness {
    fn apply(&mut self, op: &Op) -> io::Result<()> {
        match op {
            Op::Create(path, s) => self.create(path, &contents(*s)),
            Op::Write(path, off, s) => {
                self.write_at(path, u64::from(off % 16), format!("w{s}").as_bytes())
            }
            Op::Truncate(path, n) => self.truncate(path, u64::from(n % 32)),
            Op::Rename(from, to) => self.rename(from, to),
            Op::Unlink(path) => self.unlink(path),
            Op::Mkdir(path) => self.mkdir(path, 0o777),
            Op::Rmdir(path) => self.rmdir(path),
            Op::Symlink(path, t) => self.symlink(link_target(*t).as_bytes(), path),
            Op::Chmod(path, m) => self.chmod(path, MODES[usize::from(*m) % MODES.len()]),
        }
    }
    fn copy_then_delete(&mut self, from: &str, to: &str) -> io::Result<()> {
        if self
            .lstat(to)
            .is_ok_and(|e| e.attr.kind == scopefs::sys::FileType::Dir)
        {
            self.rmdir(to)?;
        }
        self.copy_tree(from, to)?;
        self.remove_tree(from)
    }
    fn snapshot(&mut self) -> BTreeMap<String, String> {
        Harness::snapshot(self)
    }
}

/// Where the view under test is reached.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// Through a real FUSE mount.
    Mount,
    /// Directly, without the kernel.
    Direct,
}

/// Runs `ops` on an overlay view of a seeded SOURCE (through `backend`) and on the model.
fn check_sequence(ops: &[Op], backend: Backend) -> Result<(), TestCaseError> {
    match backend {
        Backend::Mount => {
            let r = Rig::new(Mode::Overlay);
            let args = vec!["--overlay".to_owned(), r.overlay().display().to_string()];
            let model = seeded(&r.scene.src, &r.scene.base());
            let before = tree_digest(&r.scene.src);
            {
                let m = r.mount(&args);
                run_sequence(&mut Mounted(m.mnt()), &model, ops)?;
            }
            source_unchanged(&before, &r.scene.src)
        }
        Backend::Direct => {
            let tmp = tempfile::tempdir().unwrap();
            let base = fs::canonicalize(tmp.path()).unwrap();
            let src = base.join("src");
            fs::create_dir(&src).unwrap();
            let model = seeded(&src, &base);
            let before = tree_digest(&src);
            {
                let policy = "[writes]\nmode = \"overlay\"\n";
                let mut view = Harness::new(&src, policy, Some(&base.join("overlay")));
                run_sequence(&mut view, &model, ops)?;
            }
            source_unchanged(&before, &src)
        }
    }
}

/// Seeds SOURCE `src` (with hidden entries) and the model beside it in `base` (without), and
/// returns the model's directory.
fn seeded(src: &Path, base: &Path) -> std::path::PathBuf {
    seed(src, true);
    let model = base.join("model");
    fs::create_dir(&model).unwrap();
    seed(&model, false);
    model
}

fn source_unchanged(before: &BTreeMap<Vec<u8>, String>, src: &Path) -> Result<(), TestCaseError> {
    let change = tree_change(before, &tree_digest(src));
    prop_assert!(change.is_none(), "SOURCE changed: {:?}", change);
    Ok(())
}

/// Applies `ops` to `view` and to the plain directory `model`, comparing every result and the
/// trees at the end.
fn run_sequence(view: &mut impl Tree, model: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    prop_assert_eq!(view.snapshot(), snapshot(model), "the seeded trees differ");
    let mut log = Vec::new();
    let mut failure = None;
    for op in ops {
        let mut got = view.apply(op);
        let want = apply_model(model, op);
        let mut note = "";
        if let (Op::Rename(from, to), Some(libc::EXDEV)) =
            (op, got.as_ref().err().and_then(io::Error::raw_os_error))
        {
            note = " (EXDEV, copied)";
            got = view.copy_then_delete(from, to);
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
    let (got, want) = (view.snapshot(), snapshot(model));
    if failure.is_none() && got != want {
        failure = Some("the trees differ");
    }
    match failure {
        None => Ok(()),
        Some(failure) => Err(TestCaseError::fail(format!(
            "{failure}\nops:\n{}\nview:  {got:?}\nmodel: {want:?}",
            log.join("\n")
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn overlay_behaves_like_a_plain_directory(ops in prop::collection::vec(op(), 1..=40)) {
        check_sequence(&ops, Backend::Mount)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        max_shrink_iters: 1024,
        ..ProptestConfig::default()
    })]

    /// The same model, on the view driven without the kernel: cheap, so many more cases.
    #[test]
    fn overlay_behaves_like_a_plain_directory_without_the_kernel(
        ops in prop::collection::vec(op(), 1..=40)
    ) {
        check_sequence(&ops, Backend::Direct)?;
    }
}

/// Sequences the model found wrong once, kept as cases of their own on both backends.
fn regressions() -> Vec<Vec<Op>> {
    let p = |s: &str| s.to_owned();
    vec![
        // A SOURCE directory copied (EXDEV) over a deleted file, then a directory moved out of
        // the copy onto the deleted SOURCE directory's name: the moved directory must hide what
        // SOURCE has there (b/a, b/b), not let it show through.
        vec![
            Op::Unlink(p("a")),
            Op::Rename(p("b"), p("a")),
            Op::Rename(p("a/b"), p("b")),
        ],
        // A directory made by the agent moved onto a deleted SOURCE file's name, then a link
        // made in it: what the agent makes is its own (SPEC §3a), whatever lies beneath in
        // SOURCE or wherever the link points.
        vec![
            Op::Mkdir(p("b/c")),
            Op::Unlink(p("a")),
            Op::Rename(p("b/c"), p("a")),
            Op::Symlink(p("a/a"), 0),
        ],
        // A link made in a subdirectory pointing one level up, moved to the root over
        // SOURCE's own link: its target now leaves SOURCE, and it is still the agent's own.
        vec![Op::Symlink(p("b/c"), 3), Op::Rename(p("b/c"), p("c"))],
    ]
}

#[test]
fn model_regressions_through_a_mount() {
    for ops in regressions() {
        check_sequence(&ops, Backend::Mount).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn model_regressions_without_the_kernel() {
    for ops in regressions() {
        check_sequence(&ops, Backend::Direct).unwrap_or_else(|e| panic!("{e}"));
    }
}
