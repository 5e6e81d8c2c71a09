//! One pattern list of the policy compiled into gitignore matchers of the `ignore` crate, and
//! git's ancestor walk over lists: the first ancestor a list selects decides for everything
//! beneath it. Hide lists match case-insensitively and also meet the NFKC-folded form of names.
//! Every match names the [`Rule`] behind it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use unicode_normalization::UnicodeNormalization;

use super::errors::{Location, PolicyError, PolicyErrors};
use super::file::Pattern;
use super::presets::{self, static_name};
use super::{Kind, Rule, RuleOrigin, pattern};

/// How a list compares names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fold {
    /// Byte for byte (allow, writable): a grant must never match more than was written.
    Exact,
    /// ASCII and Unicode case-insensitive (hide, presets): a block may match more.
    Insensitive,
}

/// One compiled pattern list and the rules behind its globs. The index of each rule is stored as
/// the glob's `from` path, so a match names its rule exactly, duplicates included.
///
/// The glob engine compiles a list into one automaton of bounded size, which a list of some
/// thousands of patterns outgrows; such a list is split, in order, into parts that fit (as few
/// as will), and a match in a later part overrides one in an earlier part, as a later line does.
#[derive(Debug)]
pub(super) struct List {
    pub(super) parts: Vec<Gitignore>,
    pub(super) rules: Vec<Rule>,
}

/// A pattern that parsed: its rule's index, the lines it adds (the pattern and, in an
/// insensitive list, its folded spelling) and where it was written.
struct Line {
    index: usize,
    spellings: Vec<String>,
    location: Location,
}

impl List {
    pub(super) fn build(patterns: &[Pattern], fold: Fold, errors: &mut PolicyErrors) -> List {
        let entries = patterns.iter().map(|p| (p.rule.clone(), p.location()));
        List::from_entries(entries, fold, errors)
    }

    fn builder(fold: Fold) -> GitignoreBuilder {
        let mut builder = GitignoreBuilder::new(".");
        builder.allow_unclosed_class(false);
        // Only ever returns Ok; the Result is a leftover of the crate's API.
        let _ = builder.case_insensitive(fold == Fold::Insensitive);
        builder
    }

    fn from_entries(
        entries: impl Iterator<Item = (Rule, Location)>,
        fold: Fold,
        errors: &mut PolicyErrors,
    ) -> List {
        // Each line is parsed here once, so a bad one is reported where it was written.
        let mut parsing = List::builder(fold);
        let mut rules = Vec::new();
        let mut lines = Vec::new();
        for (rule, location) in entries {
            if let Some(message) = pattern::problem(&rule.pattern) {
                errors.push(PolicyError::new(location, message));
                continue;
            }
            let index = rules.len();
            match parsing.add_line(None, &rule.pattern) {
                Ok(_) => {
                    let mut spellings = vec![rule.pattern.clone()];
                    // The glob engine folds case for ASCII only, so an insensitive list also
                    // holds the folded spelling of a non-ASCII pattern, right after it (keeping
                    // the order `!` depends on), to meet the folded form of names. A spelling
                    // that does not compile adds nothing; the original stays.
                    if fold == Fold::Insensitive && !rule.pattern.is_ascii() {
                        let folded = fold_str(&rule.pattern);
                        if folded != rule.pattern && parsing.add_line(None, &folded).is_ok() {
                            spellings.push(folded);
                        }
                    }
                    lines.push(Line {
                        index,
                        spellings,
                        location,
                    });
                    rules.push(rule);
                }
                Err(err) => errors.push(PolicyError::new(
                    location,
                    format!("{:?} cannot be compiled: {err}", rule.pattern),
                )),
            }
        }
        let mut parts = Vec::new();
        List::compile_parts(&lines, fold, &mut parts, errors);
        List { parts, rules }
    }

    /// Compiles `lines` into one part, or, when the glob engine refuses them together, into
    /// the parts of each half in turn; a single pattern it refuses is reported where it was
    /// written.
    fn compile_parts(
        lines: &[Line],
        fold: Fold,
        parts: &mut Vec<Gitignore>,
        errors: &mut PolicyErrors,
    ) {
        if lines.is_empty() {
            return;
        }
        let mut builder = List::builder(fold);
        for line in lines {
            let from = PathBuf::from(line.index.to_string());
            for spelling in &line.spellings {
                // Parsed once already: it cannot fail now.
                let _ = builder.add_line(Some(from.clone()), spelling);
            }
        }
        match (builder.build(), lines) {
            (Ok(part), _) => parts.push(part),
            (Err(err), [line]) => {
                let pattern = line.spellings.first().map_or("", String::as_str);
                let shown: String = pattern.chars().take(60).collect();
                let more = if shown.len() < pattern.len() {
                    "…"
                } else {
                    ""
                };
                errors.push(PolicyError::new(
                    line.location.clone(),
                    format!(
                        "{shown:?}{more} is too complex to compile ({err}); split it into simpler patterns"
                    ),
                ));
            }
            (Err(_), _) => {
                let (first, second) = lines.split_at(lines.len() / 2);
                List::compile_parts(first, fold, parts, errors);
                List::compile_parts(second, fold, parts, errors);
            }
        }
    }

    /// The rule that selects `path` itself (a non-negated pattern that matched last), if any.
    fn selects(&self, path: &[u8], is_dir: bool) -> Option<&Rule> {
        let path = Path::new(OsStr::from_bytes(path));
        for part in self.parts.iter().rev() {
            match part.matched(path, is_dir) {
                Match::Ignore(glob) => {
                    let index = glob.from()?.to_str()?.parse::<usize>().ok()?;
                    return self.rules.get(index);
                }
                Match::Whitelist(_) => return None,
                Match::None => {}
            }
        }
        None
    }
}

/// git's rule for `lists`: walk the ancestors of `path` top-down; the first one a list selects
/// decides for everything beneath it; otherwise `path` itself decides. With several lists, the
/// shallowest selection wins, then the first list.
pub(super) fn walk<'a>(lists: &'a [List], path: &[u8], kind: Kind) -> Option<&'a Rule> {
    for (i, byte) in path.iter().enumerate() {
        if *byte == b'/' {
            let ancestor = path.get(..i).unwrap_or_default();
            if let Some(rule) = lists.iter().find_map(|l| l.selects(ancestor, true)) {
                return Some(rule);
            }
        }
    }
    lists
        .iter()
        .find_map(|l| l.selects(path, kind == Kind::Dir))
}

/// [`walk`] on `path` and, when it differs, on its folded form (NFKC, then lowercase, per UTF-8
/// component), so `.ＥＮＶ` is hidden like `.env`. Only ever adds matches.
pub(super) fn walk_folded<'a>(lists: &'a [List], path: &[u8], kind: Kind) -> Option<&'a Rule> {
    if let Some(rule) = walk(lists, path, kind) {
        return Some(rule);
    }
    let folded = fold(path)?;
    walk(lists, &folded, kind)
}

/// The NFKC + lowercase form of each UTF-8 component of `path`; `None` when nothing changes.
/// ASCII paths are skipped at no cost: the case-insensitive matchers already cover them.
/// Components that are not UTF-8 are kept byte for byte.
fn fold(path: &[u8]) -> Option<Vec<u8>> {
    if path.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    for (i, component) in path.split(|b| *b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        match std::str::from_utf8(component) {
            Ok(text) if !text.is_ascii() => out.extend_from_slice(fold_str(text).as_bytes()),
            _ => out.extend_from_slice(component),
        }
    }
    (out != path).then_some(out)
}

/// NFKC, then lowercase, then NFKC again (lowercasing can leave a string unnormalised).
fn fold_str(text: &str) -> String {
    text.nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect()
}

/// The list of a built-in preset, case-insensitive like a hide list.
pub(super) fn preset_list(name: &str, errors: &mut PolicyErrors) -> Option<List> {
    let Some(static_name) = static_name(name) else {
        errors.push(PolicyError::new(
            Location::Preset("unknown"),
            format!(
                "unknown preset {name:?}; the presets are {}",
                presets::PRESET_NAMES.join(", ")
            ),
        ));
        return None;
    };
    let preset = match presets::all() {
        Ok(_) => presets::preset(static_name)?,
        Err(message) => {
            errors.push(PolicyError::new(Location::Preset(static_name), message));
            return None;
        }
    };
    let entries = preset.rules.iter().map(|r| {
        (
            Rule {
                origin: RuleOrigin::Preset(static_name),
                pattern: r.pattern.clone(),
            },
            Location::Preset(static_name),
        )
    });
    Some(List::from_entries(entries, Fold::Insensitive, errors))
}
