//! The fuzz targets' regression seeds (`fuzz/corpus/TARGET/`) replayed through the very checks
//! the targets run (`fuzz/checks/TARGET.rs`), with the ordinary test build: a seed that once
//! found a bug keeps failing here should the bug come back, with no fuzzing toolchain needed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/name_validation.rs"]
mod name_validation;
#[path = "../fuzz/checks/overlay_paths.rs"]
mod overlay_paths;
#[path = "../fuzz/checks/pattern_match.rs"]
mod pattern_match;
#[path = "../fuzz/checks/policy_parse.rs"]
mod policy_parse;

/// Every fuzz target; each has a test below.
const TARGETS: [&str; 4] = [
    "name_validation",
    "overlay_paths",
    "pattern_match",
    "policy_parse",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The names of the files in `dir` ending in `.rs`, without it, sorted.
fn targets_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".rs").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Runs one target's checks over each of its seeds; a failing seed is named.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut seeds: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seeds of {target}, {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{} holds no seed", dir.display());
    for seed in seeds {
        let data = fs::read(&seed).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            panic!(
                "{target}: the seed {} fails its checks: {:?}",
                seed.display(),
                e.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            );
        }
    }
}

#[test]
fn every_fuzz_target_is_replayed_here() {
    let mut known: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    known.sort();
    assert_eq!(
        targets_in(&fuzz_dir().join("fuzz_targets")),
        known,
        "fuzz/fuzz_targets/ and the targets this test replays differ"
    );
    assert_eq!(targets_in(&fuzz_dir().join("checks")), known);
}

#[test]
fn name_validation_seeds() {
    replay("name_validation", name_validation::run);
}

#[test]
fn overlay_paths_seeds() {
    replay("overlay_paths", overlay_paths::run);
}

#[test]
fn pattern_match_seeds() {
    replay("pattern_match", pattern_match::run);
}

#[test]
fn policy_parse_seeds() {
    replay("policy_parse", policy_parse::run);
}
