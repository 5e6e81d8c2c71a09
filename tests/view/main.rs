//! The view and the overlay without the kernel: a [`harness::Harness`] builds a `View` on a
//! temporary SOURCE and drives it as the kernel would (lookup, create, write, rename, unlink,
//! readdir, setattr), in each write mode; then the overlay it wrote is reviewed, planned and
//! applied through the library. Nothing here mounts, so this suite runs wherever the crate
//! builds. The proptest model of tests/writes/model.rs runs on this harness too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;
mod ops;
mod review;

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A temporary directory holding SOURCE (`src/`) and room for an overlay (`ov/`).
#[derive(Debug)]
pub struct Scene {
    _tmp: TempDir,
    pub src: PathBuf,
    pub overlay: PathBuf,
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

impl Scene {
    pub fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let src = base.join("src");
        fs::create_dir(&src).unwrap();
        Scene {
            _tmp: tmp,
            src,
            overlay: base.join("ov"),
        }
    }

    /// Writes `data` to SOURCE's `rel`, parents included.
    pub fn file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let path = self.src.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        path
    }

    /// A view of SOURCE under the policy `text`, with this scene's overlay in overlay mode.
    pub fn view(&self, text: &str) -> harness::Harness {
        harness::Harness::new(&self.src, text, Some(&self.overlay))
    }

    /// `ov/upper` joined with `rel`.
    pub fn upper(&self, rel: &str) -> PathBuf {
        self.overlay.join("upper").join(rel)
    }
}

/// The errno of a failed call, by name.
pub fn errno<T: std::fmt::Debug>(result: std::io::Result<T>) -> i32 {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("not an errno: {e}")),
    }
}

/// Every file and directory beneath `root`, with file contents, to prove SOURCE unchanged.
pub fn tree(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                stack.push(path);
                out.push((rel, None));
            } else if meta.is_file() {
                out.push((rel, Some(fs::read(&path).unwrap())));
            } else {
                out.push((
                    rel,
                    Some(
                        fs::read_link(&path)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ),
                ));
            }
        }
    }
    out.sort();
    out
}
