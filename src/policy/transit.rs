//! The "transit" analysis of allow patterns: which directories are on the way to something an
//! allow pattern could match, decided from the patterns alone.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use super::file::Pattern;

/// Which directories are "on the way" to something an allow pattern could match, decided from
/// the patterns alone (no file-system access). It may say yes too often (an empty transit
/// directory is shown), never too rarely.
#[derive(Debug, Default)]
pub(super) struct Transit {
    /// Some positive pattern has no `/` inside (e.g. `*.rs`, `logs/`), or starts with `**`: it
    /// can match at any depth, so every directory is on the way.
    any_depth: bool,
    /// The anchored patterns (a `/` inside), split into components.
    anchored: Vec<Vec<Component>>,
}

#[derive(Debug)]
enum Component {
    /// `**`: any number of components.
    Any,
    /// One component's glob, matched exactly like allow.
    Glob(GlobMatcher),
}

impl Transit {
    pub(super) fn build(allow: &[Pattern]) -> Transit {
        let mut transit = Transit::default();
        for pattern in allow {
            let text = pattern.text();
            if text.starts_with('!') {
                continue;
            }
            let anchored = text.starts_with('/');
            let body = text.trim_start_matches('/').trim_end_matches('/');
            if !anchored && !body.contains('/') {
                transit.any_depth = true;
                continue;
            }
            let mut components = Vec::new();
            for part in body.split('/') {
                if part == "**" {
                    components.push(Component::Any);
                    continue;
                }
                let glob = GlobBuilder::new(part)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build();
                match glob {
                    Ok(glob) => components.push(Component::Glob(glob.compile_matcher())),
                    // Validation refuses such patterns; if one got here, err on showing more.
                    Err(_) => components.push(Component::Any),
                }
            }
            transit.anchored.push(components);
        }
        transit
    }

    /// Whether something strictly beneath the directory `dir` could match an allow pattern.
    pub(super) fn beneath(&self, dir: &[u8]) -> bool {
        self.any_depth
            || self
                .anchored
                .iter()
                .any(|pattern| could_extend(pattern, dir.split(|b| *b == b'/')))
    }
}

/// Whether some path strictly longer than the components `dir` could match `pattern`.
fn could_extend<'a>(
    pattern: &[Component],
    mut dir: impl Iterator<Item = &'a [u8]> + Clone,
) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return false;
    };
    match first {
        Component::Any => true,
        Component::Glob(glob) => match dir.next() {
            None => true,
            Some(name) => {
                glob.is_match(Path::new(OsStr::from_bytes(name))) && could_extend(rest, dir)
            }
        },
    }
}
