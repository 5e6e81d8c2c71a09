//! [`Policy`]: the policy file of SPEC §2 as data, the built-in default, and the command-line
//! flags of SPEC §1 merged on top.
//!
//! Reading a file reports every problem at once: the text is parsed into a spanned TOML document,
//! checked against the schema below (unknown keys, wrong types, bad values, bad patterns, unknown
//! presets), and only a document that passes is deserialized with serde (`deny_unknown_fields`,
//! a second line of defence). This module never compiles patterns into a matcher and never
//! touches SOURCE.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

use super::errors::{LineIndex, Location, PolicyError, PolicyErrors};
use super::schema::{Found, check_document};
use super::size::parse_size;
use super::{HardlinkMode, InodeMode, Rule, RuleOrigin, SymlinkMode, WriteMode, pattern};

/// Shown as the file name of a policy parsed from text without a file.
const NO_FILE: &str = "<policy>";

/// One pattern of a policy list, with the rule it becomes (origin and text) and, for a pattern
/// read from a file, its column for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub rule: Rule,
    column: usize,
    span: Option<Range<usize>>,
}

impl Pattern {
    fn new(origin: RuleOrigin, text: &str) -> Pattern {
        Pattern {
            rule: Rule {
                origin,
                pattern: text.to_string(),
            },
            column: 0,
            span: None,
        }
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.rule.pattern
    }

    /// Where the pattern was written, for an error about it.
    pub fn location(&self) -> Location {
        match &self.rule.origin {
            RuleOrigin::File { path, line } => Location::File {
                file: (path.as_os_str() != NO_FILE).then(|| path.clone()),
                line: *line,
                column: self.column,
            },
            RuleOrigin::Flag(flag) => Location::Flag {
                flag,
                value: self.rule.pattern.clone(),
            },
            RuleOrigin::Preset(name) => Location::Preset(name),
            RuleOrigin::Default => Location::Preset("default"),
        }
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<String>::deserialize(de)?;
        let span = spanned.span();
        let mut pattern = Pattern::new(
            RuleOrigin::File {
                path: PathBuf::from(NO_FILE),
                line: 0,
            },
            spanned.get_ref(),
        );
        pattern.span = Some(span);
        Ok(pattern)
    }
}

/// `[audit] events`: which events the audit log records (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditEvents {
    /// Refused writes and lookups of hidden names that exist.
    #[default]
    Denied,
    /// `denied` plus every change.
    Writes,
    /// `writes` plus reads.
    All,
}

/// `[limits]`: caps on the overlay; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Bytes the overlay may hold; writes past it fail with ENOSPC.
    #[serde(default, deserialize_with = "de_size")]
    pub overlay_bytes: Option<u64>,
    /// Files the overlay may hold; creations past it fail with ENOSPC.
    #[serde(default)]
    pub overlay_files: Option<u64>,
}

/// `[audit]`: the JSON-lines audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Where the log goes; relative to the policy file's directory when read from a file.
    #[serde(default)]
    pub log: Option<PathBuf>,
    #[serde(default)]
    pub events: AuditEvents,
}

/// SPEC §1's POLICY options as data: a policy file (or, without one, the built-in default)
/// and what the options change on top of it. Kept by a daemon to read the policy again on
/// SIGHUP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-c`: the policy file.
    pub config: Option<PathBuf>,
    /// `--allow`: replaces the allow list when not empty.
    pub allow: Vec<String>,
    /// `--hide`: appended to the hide list.
    pub hide: Vec<String>,
    /// `--no-presets`.
    pub no_presets: bool,
    /// `--writes`.
    pub writes: Option<WriteMode>,
    /// `--overlay`: implies `--writes overlay`.
    pub overlay: Option<PathBuf>,
    /// `--writable`: replaces the writable list when not empty.
    pub writable: Vec<String>,
    /// `--audit-log`.
    pub audit_log: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct View {
    #[serde(default = "default_allow")]
    allow: Vec<Pattern>,
    #[serde(default)]
    hide: Vec<Pattern>,
    #[serde(default = "default_presets")]
    presets: Vec<String>,
    #[serde(default)]
    symlinks: SymlinkMode,
    #[serde(default)]
    hardlinks: HardlinkMode,
    #[serde(default)]
    inodes: InodeMode,
}

impl Default for View {
    fn default() -> Self {
        View {
            allow: default_allow(),
            hide: Vec::new(),
            presets: default_presets(),
            symlinks: SymlinkMode::default(),
            hardlinks: HardlinkMode::default(),
            inodes: InodeMode::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Writes {
    #[serde(default)]
    mode: WriteMode,
    #[serde(default)]
    overlay: Option<PathBuf>,
    #[serde(default)]
    writable: Option<Vec<Pattern>>,
    #[serde(default = "default_protect")]
    protect: Vec<String>,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            mode: WriteMode::default(),
            overlay: None,
            writable: None,
            protect: default_protect(),
        }
    }
}

fn default_allow() -> Vec<Pattern> {
    vec![Pattern::new(RuleOrigin::Default, "**")]
}

fn default_presets() -> Vec<String> {
    vec!["secrets".to_string()]
}

fn default_protect() -> Vec<String> {
    vec!["exec-config".to_string()]
}

fn de_size<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(de)? {
        None => Ok(None),
        Some(Size::Bytes(n)) => Ok(Some(n)),
        Some(Size::Text(text)) => parse_size(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The whole policy of SPEC §2: what the view shows, what may be written, limits and audit.
/// Built from a file ([`Policy::load`]), text ([`Policy::parse`]), the built-in default
/// ([`Policy::builtin`]) or a file with options on top ([`Policy::from_overrides`]); compiled into a
/// [`Matcher`](super::Matcher) with [`Policy::compile`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    view: View,
    #[serde(default)]
    writes: Writes,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    audit: Audit,
    #[serde(skip)]
    file: Option<PathBuf>,
}

impl Policy {
    /// The default of SPEC §1: everything visible except the `secrets` preset, writes denied.
    pub fn builtin() -> Policy {
        Policy::default()
    }

    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            PolicyError::new(
                Location::Whole(path.to_path_buf()),
                format!("cannot read the policy file: {err}; check the path given to -c/--config"),
            )
        })?;
        Policy::parse(&text, Some(path))
    }

    /// Parses and checks policy text. `origin` is the file it came from: errors and rules name
    /// it, and relative `writes.overlay` and `audit.log` are taken relative to its directory.
    pub fn parse(text: &str, origin: Option<&Path>) -> Result<Policy, PolicyErrors> {
        let (doc, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            let mut errors = Found::new(text, origin);
            for err in syntax {
                errors.at(
                    err.span().map_or(0, |s| s.start),
                    format!(
                        "invalid TOML: {}; fix the syntax (strings need quotes, lists are [\"a\", \"b\"])",
                        err.message().trim_end()
                    ),
                );
            }
            return Err(errors.finish());
        }
        let mut found = Found::new(text, origin);
        check_document(doc.get_ref(), &mut found);
        let errors = found.finish();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut policy: Policy = toml::from_str(text).map_err(|err| {
            PolicyErrors::from(PolicyError::new(
                Location::in_text(origin, text, err.span().map_or(0, |s| s.start)),
                format!("{}; fix the value", err.message().trim_end()),
            ))
        })?;
        policy.file = origin.map(Path::to_path_buf);
        policy.locate_patterns(text);
        if let Some(dir) = origin.and_then(Path::parent) {
            for path in [&mut policy.writes.overlay, &mut policy.audit.log]
                .into_iter()
                .flatten()
            {
                if path.is_relative() {
                    *path = dir.join(&*path);
                }
            }
        }
        Ok(policy)
    }

    /// The policy of SPEC §1's POLICY options: the file (or the built-in default) with the
    /// options merged on top. Errors of the file and of the options are reported together.
    pub fn from_overrides(given: &Overrides) -> Result<Policy, PolicyErrors> {
        let mut errors = PolicyErrors::new();
        let mut policy = match &given.config {
            Some(path) => Policy::load(path).unwrap_or_else(|err| {
                errors.extend(err);
                Policy::builtin()
            }),
            None => Policy::builtin(),
        };
        if !given.allow.is_empty() {
            policy.view.allow = flag_patterns("--allow", &given.allow, &mut errors);
        }
        let hide = flag_patterns("--hide", &given.hide, &mut errors);
        policy.view.hide.extend(hide);
        if given.no_presets {
            policy.view.presets.clear();
        }
        if let Some(mode) = given.writes {
            policy.writes.mode = mode;
        }
        if let Some(dir) = &given.overlay {
            match given.writes {
                None | Some(WriteMode::Overlay) => policy.writes.mode = WriteMode::Overlay,
                Some(other) => errors.push(PolicyError::new(
                    Location::Flag {
                        flag: "--overlay",
                        value: dir.display().to_string(),
                    },
                    format!(
                        "--overlay implies --writes overlay, but --writes {} was given; drop one \
                         of them",
                        super::name_of(&other)
                    ),
                )),
            }
            policy.writes.overlay = Some(dir.clone());
        }
        if !given.writable.is_empty() {
            policy.writes.writable =
                Some(flag_patterns("--writable", &given.writable, &mut errors));
            if policy.writes.mode == WriteMode::Deny {
                errors.push(PolicyError::new(
                    Location::Flag {
                        flag: "--writable",
                        value: given.writable.join(" "),
                    },
                    "--writable needs a write mode, but writes are denied (the view would be \
                     read-only and every write would fail with EROFS); add --overlay DIR or \
                     --writes direct"
                        .to_string(),
                ));
            }
        }
        if let Some(log) = &given.audit_log {
            policy.audit.log = Some(log.clone());
        }
        errors.into_result(policy)
    }

    /// The file the policy was read from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// A short name for messages: the file, or "built-in default".
    pub fn name(&self) -> String {
        match &self.file {
            Some(file) => file.display().to_string(),
            None => "built-in default".to_string(),
        }
    }

    /// `[view] allow`.
    pub fn allow(&self) -> &[Pattern] {
        &self.view.allow
    }

    /// What is valid but probably not meant: allow patterns that name a directory without
    /// anchoring it (`src/` matches at any depth), each with its location.
    pub fn warnings(&self) -> Vec<PolicyError> {
        self.view
            .allow
            .iter()
            .filter(|p| !matches!(p.rule.origin, RuleOrigin::Default | RuleOrigin::Preset(_)))
            .filter_map(|p| {
                super::pattern::unanchored_directory(p.text())
                    .map(|message| PolicyError::new(p.location(), message))
            })
            .collect()
    }

    /// `[view] hide`, with `--hide` patterns appended.
    pub fn hide(&self) -> &[Pattern] {
        &self.view.hide
    }

    /// `[view] presets`: the enabled hide presets.
    pub fn presets(&self) -> &[String] {
        &self.view.presets
    }

    pub fn symlinks(&self) -> SymlinkMode {
        self.view.symlinks
    }

    pub fn hardlinks(&self) -> HardlinkMode {
        self.view.hardlinks
    }

    /// `[view] inodes`.
    pub fn inodes(&self) -> InodeMode {
        self.view.inodes
    }

    /// `[writes] mode`.
    pub fn write_mode(&self) -> WriteMode {
        self.writes.mode
    }

    /// `[writes] overlay`, relative paths already resolved against the policy file's directory.
    pub fn overlay_dir(&self) -> Option<&Path> {
        self.writes.overlay.as_deref()
    }

    /// The effective writable list: as written, else `["**"]` unless the mode is `deny`, where
    /// nothing is writable.
    pub fn writable(&self) -> Vec<Pattern> {
        match (&self.writes.writable, self.writes.mode) {
            (_, WriteMode::Deny) => Vec::new(),
            (Some(list), _) => list.clone(),
            (None, _) => vec![Pattern::new(RuleOrigin::Default, "**")],
        }
    }

    /// `[writes] protect`: presets never writable.
    pub fn protect(&self) -> &[String] {
        &self.writes.protect
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Gives every pattern read from the file its file, line and column.
    fn locate_patterns(&mut self, text: &str) {
        let file = self.file.clone().unwrap_or_else(|| PathBuf::from(NO_FILE));
        let lines = LineIndex::new(text);
        let lists = [
            Some(&mut self.view.allow),
            Some(&mut self.view.hide),
            self.writes.writable.as_mut(),
        ];
        for pattern in lists.into_iter().flatten().flatten() {
            if let Some(span) = &pattern.span {
                let (line, column) = lines.line_column(span.start);
                pattern.rule.origin = RuleOrigin::File {
                    path: file.clone(),
                    line,
                };
                pattern.column = column;
            }
        }
    }
}

/// Checks flag patterns, recording errors, and returns them as rules of `flag`.
fn flag_patterns(flag: &'static str, values: &[String], errors: &mut PolicyErrors) -> Vec<Pattern> {
    values
        .iter()
        .map(|value| {
            let p = Pattern::new(RuleOrigin::Flag(flag), value);
            if let Some(message) = pattern::problem(value) {
                errors.push(PolicyError::new(p.location(), message));
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Policy::parse(text, Some(Path::new("p.toml"))) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn full_file_parses() {
        let text = r#"
[view]
allow    = ["**"]
hide     = ["*.log"]
presets  = ["secrets", "vcs"]
symlinks = "keep"
hardlinks = "keep"

[writes]
mode     = "overlay"
overlay  = "agent-overlay"
writable = ["src/", "tests/"]
protect  = ["exec-config"]

[limits]
overlay_bytes = "2 GiB"
overlay_files = 100000

[audit]
log    = "/var/log/audit.jsonl"
events = "all"
"#;
        let policy = Policy::parse(text, Some(Path::new("/etc/scopefs/p.toml")));
        assert!(policy.is_ok(), "{policy:?}");
        let Ok(policy) = policy else { return };
        assert_eq!(policy.write_mode(), WriteMode::Overlay);
        assert_eq!(
            policy.overlay_dir(),
            Some(Path::new("/etc/scopefs/agent-overlay"))
        );
        assert_eq!(
            policy.audit().log,
            Some(PathBuf::from("/var/log/audit.jsonl"))
        );
        assert_eq!(policy.audit().events, AuditEvents::All);
        assert_eq!(policy.limits().overlay_bytes, Some(2 << 30));
        assert_eq!(policy.limits().overlay_files, Some(100_000));
        assert_eq!(policy.symlinks(), SymlinkMode::Keep);
        assert_eq!(policy.hardlinks(), HardlinkMode::Keep);
        assert_eq!(policy.presets(), ["secrets", "vcs"]);
        let hide = policy.hide().first().map(|p| p.rule.clone());
        assert_eq!(
            hide,
            Some(Rule {
                origin: RuleOrigin::File {
                    path: "/etc/scopefs/p.toml".into(),
                    line: 4,
                },
                pattern: "*.log".into(),
            })
        );
        let writable: Vec<String> = policy.writable().iter().map(|p| p.text().into()).collect();
        assert_eq!(writable, ["src/", "tests/"]);
    }

    #[test]
    fn defaults() {
        let policy = Policy::parse("", None).unwrap_or_default();
        assert_eq!(policy, Policy::builtin());
        let allow: Vec<&str> = policy.allow().iter().map(Pattern::text).collect();
        assert_eq!(allow, ["**"]);
        assert_eq!(policy.presets(), ["secrets"]);
        assert_eq!(policy.protect(), ["exec-config"]);
        assert_eq!(policy.write_mode(), WriteMode::Deny);
        assert!(policy.writable().is_empty());
        let overlay = Policy::parse("[writes]\nmode = \"overlay\"", None).unwrap_or_default();
        let writable: Vec<String> = overlay.writable().iter().map(|p| p.text().into()).collect();
        assert_eq!(writable, ["**"]);
        assert_eq!(overlay.limits(), &Limits::default());
    }

    #[test]
    fn every_error_is_reported_with_line_and_column() {
        let text = "[view]\nallow = \"src\"\nhide = [\"../x\", \"/etc/passwd\", 3]\npresets = [\"secret\"]\nsymlink = \"keep\"\n[writes]\nmode = \"overlai\"\n[limits]\noverlay_bytes = \"2 parsecs\"\noverlay_files = -1\n[other]\n";
        let got = errors(text);
        let want_prefixes = [
            "p.toml:2:9: `view.allow` must be a list",
            "p.toml:3:9: \"../x\" has a `..` component",
            "p.toml:3:17: \"/etc/passwd\" looks like an absolute path",
            "p.toml:3:32: `view.hide` holds strings only",
            "p.toml:4:12: unknown preset \"secret\" (did you mean `secrets`?)",
            "p.toml:5:1: unknown key `symlink` in [view] (did you mean `symlinks`?)",
            "p.toml:7:8: `writes.mode` cannot be \"overlai\" (did you mean `overlay`?)",
            "p.toml:9:17: `limits.overlay_bytes`: unknown size unit",
            "p.toml:10:17: `limits.overlay_files` must be a whole number",
            "p.toml:11:2: unknown section `other`",
        ];
        assert_eq!(got.len(), want_prefixes.len(), "{got:#?}");
        for (got, want) in got.iter().zip(want_prefixes) {
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn malformed_toml_is_located() {
        let got = errors("[view]\nhide = [\"a\"\nallow = 1\n");
        assert!(!got.is_empty());
        assert!(got.iter().all(|e| e.contains("invalid TOML")), "{got:?}");
        assert!(
            got.first().is_some_and(|e| e.starts_with("p.toml:3:")),
            "{got:?}"
        );
    }

    #[test]
    fn wrong_section_type() {
        let got = errors("view = 3\n");
        assert_eq!(got.len(), 1);
        assert!(
            got.iter()
                .all(|e| e.starts_with("p.toml:1:8: `view` must be a table")),
            "{got:?}"
        );
    }

    #[test]
    fn flags_merge_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[view]\nallow = [\"src/\"]\nhide = [\"*.log\"]\n").unwrap();
        let args = Overrides {
            config: Some(path.clone()),
            allow: vec!["docs/".into()],
            hide: vec!["*.tmp".into()],
            no_presets: true,
            writes: None,
            overlay: Some("ov".into()),
            writable: vec!["docs/".into()],
            audit_log: Some("a.jsonl".into()),
        };
        let policy = Policy::from_overrides(&args);
        assert!(policy.is_ok(), "{policy:?}");
        let Ok(policy) = policy else { return };
        let allow: Vec<Rule> = policy.allow().iter().map(|p| p.rule.clone()).collect();
        assert_eq!(
            allow,
            [Rule {
                origin: RuleOrigin::Flag("--allow"),
                pattern: "docs/".into()
            }]
        );
        let hide: Vec<&str> = policy.hide().iter().map(Pattern::text).collect();
        assert_eq!(hide, ["*.log", "*.tmp"]);
        assert!(policy.presets().is_empty());
        assert_eq!(policy.write_mode(), WriteMode::Overlay);
        assert_eq!(policy.overlay_dir(), Some(Path::new("ov")));
        assert_eq!(policy.audit().log, Some(PathBuf::from("a.jsonl")));
        assert_eq!(policy.file(), Some(path.as_path()));
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let args = Overrides {
            hide: vec!["../x".into(), "ok".into()],
            allow: vec!["/home/me/p".into()],
            writes: Some(WriteMode::Deny),
            overlay: Some("ov".into()),
            ..Overrides::default()
        };
        let got: Vec<String> = match Policy::from_overrides(&args) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter()
                .any(|e| e.starts_with("--allow \"/home/me/p\": "))
        );
        assert!(got.iter().any(|e| e.starts_with("--hide \"../x\": ")));
        assert!(
            got.iter().any(|e| e.starts_with("--overlay \"ov\": ")
                && e.contains("but --writes deny was given"))
        );
    }

    #[test]
    fn writable_without_a_write_mode_is_an_error_naming_the_fix() {
        for writes in [None, Some(WriteMode::Deny)] {
            let args = Overrides {
                writes,
                writable: vec!["src/".into()],
                ..Overrides::default()
            };
            let got: Vec<String> = match Policy::from_overrides(&args) {
                Ok(_) => Vec::new(),
                Err(e) => e.iter().map(ToString::to_string).collect(),
            };
            assert_eq!(got.len(), 1, "{writes:?}: {got:?}");
            assert!(
                got.iter().all(|e| e.starts_with("--writable \"src/\": ")
                    && e.contains("--overlay DIR")
                    && e.contains("--writes direct")),
                "{got:?}"
            );
        }
        for writes in [Some(WriteMode::Overlay), Some(WriteMode::Direct)] {
            let args = Overrides {
                writes,
                writable: vec!["src/".into()],
                ..Overrides::default()
            };
            assert!(Policy::from_overrides(&args).is_ok(), "{writes:?}");
        }
    }

    #[test]
    fn missing_file() {
        let got = Policy::load(Path::new("/nonexistent/p.toml")).map(|_| ());
        let text = got.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(
            text.starts_with("/nonexistent/p.toml: cannot read"),
            "{text}"
        );
    }
}
