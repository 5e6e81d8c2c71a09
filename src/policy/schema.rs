//! The schema of the policy file (SPEC §2), checked on the spanned TOML document before serde
//! sees it, so that every problem is reported at once with its line and column and a fix:
//! unknown sections and keys (with the nearest known name), wrong types, values outside an
//! enum's (the names serde accepts, read from the enums themselves), bad patterns and unknown
//! presets. It never builds a [`Policy`](super::Policy).

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::errors::{Location, PolicyError, PolicyErrors};
use super::file::AuditEvents;
use super::presets::{PRESET_NAMES, static_name};
use super::size::parse_size;
use super::{HardlinkMode, InodeMode, SymlinkMode, WriteMode, pattern};

/// Errors found in one text, kept with their byte offsets so they come out in file order.
pub(super) struct Found<'a> {
    text: &'a str,
    file: Option<&'a Path>,
    errors: Vec<(usize, String)>,
}

impl<'a> Found<'a> {
    pub(super) fn new(text: &'a str, file: Option<&'a Path>) -> Self {
        Found {
            text,
            file,
            errors: Vec::new(),
        }
    }

    pub(super) fn at(&mut self, offset: usize, message: String) {
        self.errors.push((offset, message));
    }

    pub(super) fn finish(mut self) -> PolicyErrors {
        self.errors.sort_by_key(|(offset, _)| *offset);
        let mut out = PolicyErrors::new();
        for (offset, message) in self.errors {
            out.push(PolicyError::new(
                Location::in_text(self.file, self.text, offset),
                message,
            ));
        }
        out
    }
}

/// What a key's value must be.
#[derive(Clone, Copy)]
enum Expect {
    /// A list of gitignore patterns.
    Patterns,
    /// A list of preset names.
    Presets,
    /// One of the names of an enum of the policy: those its `Deserialize` accepts.
    OneOf(fn() -> &'static [&'static str]),
    /// A path (a non-empty string).
    Path,
    /// A size: an integer number of bytes or a string such as "2 GiB".
    Size,
    /// A non-negative integer.
    Count,
}

/// The names serde reads for the enum `T`, in the order of its variants.
fn names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}

type Section = (&'static str, &'static [(&'static str, Expect)]);

/// The schema of SPEC §2.
const SCHEMA: &[Section] = &[
    (
        "view",
        &[
            ("allow", Expect::Patterns),
            ("hide", Expect::Patterns),
            ("presets", Expect::Presets),
            ("symlinks", Expect::OneOf(names::<SymlinkMode>)),
            ("hardlinks", Expect::OneOf(names::<HardlinkMode>)),
            ("inodes", Expect::OneOf(names::<InodeMode>)),
        ],
    ),
    (
        "writes",
        &[
            ("mode", Expect::OneOf(names::<WriteMode>)),
            ("overlay", Expect::Path),
            ("writable", Expect::Patterns),
            ("protect", Expect::Presets),
        ],
    ),
    (
        "limits",
        &[
            ("overlay_bytes", Expect::Size),
            ("overlay_files", Expect::Count),
        ],
    ),
    (
        "audit",
        &[
            ("log", Expect::Path),
            ("events", Expect::OneOf(names::<AuditEvents>)),
        ],
    ),
];

pub(super) fn check_document(doc: &DeTable<'_>, found: &mut Found<'_>) {
    let sections: Vec<&str> = SCHEMA.iter().map(|(name, _)| *name).collect();
    for (key, value) in doc.iter() {
        let name: &str = key.get_ref();
        let Some((_, keys)) = SCHEMA.iter().find(|(section, _)| *section == name) else {
            found.at(
                key.span().start,
                format!(
                    "unknown section `{name}`{}; the sections are [view], [writes], [limits] and \
                     [audit]",
                    did_you_mean(name, &sections)
                ),
            );
            continue;
        };
        let DeValue::Table(table) = value.get_ref() else {
            found.at(
                value.span().start,
                format!(
                    "`{name}` must be a table ([{name}] followed by keys); found {}",
                    describe(value.get_ref())
                ),
            );
            continue;
        };
        let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        for (key, value) in table.iter() {
            let key_name: &str = key.get_ref();
            match keys.iter().find(|(k, _)| *k == key_name) {
                Some((_, expect)) => {
                    check_value(name, key_name, *expect, value, found);
                }
                None => found.at(
                    key.span().start,
                    format!(
                        "unknown key `{key_name}` in [{name}]{}; the keys of [{name}] are {}",
                        did_you_mean(key_name, &names),
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
    }
}

fn check_value(
    section: &str,
    key: &str,
    expect: Expect,
    value: &toml::Spanned<DeValue<'_>>,
    found: &mut Found<'_>,
) {
    let at = value.span().start;
    let v = value.get_ref();
    match expect {
        Expect::Patterns | Expect::Presets => {
            let DeValue::Array(items) = v else {
                let example = match (expect, v) {
                    (_, DeValue::String(s)) => format!("{key} = [{s:?}]"),
                    (Expect::Presets, _) => format!("{key} = [\"secrets\"]"),
                    _ => format!("{key} = [\"*.log\"]"),
                };
                found.at(
                    at,
                    format!(
                        "`{section}.{key}` must be a list of strings; found {}; write {example}",
                        describe(v)
                    ),
                );
                return;
            };
            for item in items.iter() {
                let DeValue::String(text) = item.get_ref() else {
                    found.at(
                        item.span().start,
                        format!(
                            "`{section}.{key}` holds strings only; found {}; put it in quotes",
                            describe(item.get_ref())
                        ),
                    );
                    continue;
                };
                if matches!(expect, Expect::Presets) {
                    if static_name(text).is_none() {
                        found.at(
                            item.span().start,
                            format!(
                                "unknown preset {text:?}{}; the presets are {}",
                                did_you_mean(text, PRESET_NAMES),
                                PRESET_NAMES
                                    .iter()
                                    .map(|n| format!("{n:?}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                } else if let Some(message) = pattern::problem(text) {
                    found.at(item.span().start, message);
                }
            }
        }
        Expect::OneOf(names) => {
            let choices = names();
            let list = choices
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            match v {
                DeValue::String(s) if choices.contains(&s.as_ref()) => {}
                DeValue::String(s) => found.at(
                    at,
                    format!(
                        "`{section}.{key}` cannot be {s:?}{}; use one of {list}",
                        did_you_mean(s, choices)
                    ),
                ),
                other => found.at(
                    at,
                    format!(
                        "`{section}.{key}` must be a string, one of {list}; found {}",
                        describe(other)
                    ),
                ),
            }
        }
        Expect::Path => match v {
            DeValue::String(s) if s.is_empty() => found.at(
                at,
                format!("`{section}.{key}` is empty; give a path, or remove the key"),
            ),
            DeValue::String(s) if s.contains('\0') => found.at(
                at,
                format!("`{section}.{key}` contains a NUL byte; remove it"),
            ),
            DeValue::String(_) => {}
            other => found.at(
                at,
                format!(
                    "`{section}.{key}` must be a path in quotes; found {}",
                    describe(other)
                ),
            ),
        },
        Expect::Size => match v {
            DeValue::Integer(i) => {
                if u64::from_str_radix(i.as_str(), i.radix()).is_err() {
                    found.at(
                        at,
                        format!(
                            "`{section}.{key}` must be a number of bytes, 0 or more, or a size \
                             such as \"2 GiB\""
                        ),
                    );
                }
            }
            DeValue::String(s) => {
                if let Err(message) = parse_size(s) {
                    found.at(at, format!("`{section}.{key}`: {message}"));
                }
            }
            other => found.at(
                at,
                format!(
                    "`{section}.{key}` must be a size such as \"2 GiB\" or a number of bytes; \
                     found {}",
                    describe(other)
                ),
            ),
        },
        Expect::Count => match v {
            DeValue::Integer(i) if u64::from_str_radix(i.as_str(), i.radix()).is_ok() => {}
            other => found.at(
                at,
                format!(
                    "`{section}.{key}` must be a whole number, 0 or more, without quotes; found {}",
                    describe(other)
                ),
            ),
        },
    }
}

/// "a string", "an integer" ... for messages.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(_) => "a date".to_string(),
        DeValue::Array(_) => "a list".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// `" (did you mean `x`?)"` when a known name is close to `got`, else nothing.
fn did_you_mean(got: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::levenshtein(&got.to_ascii_lowercase(), k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lists_are_the_names_serde_reads() {
        assert_eq!(names::<SymlinkMode>(), ["contain", "hide", "keep"]);
        assert_eq!(names::<HardlinkMode>(), ["hide", "strict", "keep"]);
        assert_eq!(names::<InodeMode>(), ["source", "synthetic"]);
        assert_eq!(names::<WriteMode>(), ["deny", "overlay", "direct"]);
        assert_eq!(names::<AuditEvents>(), ["denied", "writes", "all"]);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("hid", &["hide", "allow"]),
            " (did you mean `hide`?)"
        );
        assert_eq!(did_you_mean("zzzzzz", &["hide", "allow"]), "");
    }
}
