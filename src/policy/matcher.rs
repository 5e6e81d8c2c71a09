//! [`Matcher`]: the compiled policy, asked on every lookup whether a path may be seen or written.
//!
//! Each pattern list (allow, hide, each preset, writable, each protect preset) compiles into one
//! gitignore matcher of the `ignore` crate, which supplies gitignore line semantics (anchoring,
//! `dir/`, `**`, `!`, later lines win). On top of it this module does what that crate leaves to
//! its caller: the ancestor walk of git (the first ancestor a list selects decides for everything
//! beneath it, so `!` cannot re-include below an excluded directory), case-insensitive and
//! NFKC-folded matching for hide lists, the static "transit" analysis of allow patterns, and
//! naming the rule behind every verdict. It never touches SOURCE and never panics; it only calls
//! `Gitignore::matched`, never `matched_path_or_any_parents` (which asserts).

use super::errors::PolicyErrors;
use super::file::Policy;
use super::list::{Fold, List, preset_list, walk, walk_folded};
use super::transit::Transit;
use super::{Decision, HardlinkMode, InodeMode, Kind, Rule, SymlinkMode, WriteMode};
use crate::path::RelPath;

/// Whether a visible path may be changed (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writability {
    /// The path or an ancestor matches the writable list (and nothing protects it).
    Writable(Rule),
    /// The write mode is `deny`, or the path matches no writable pattern.
    NotWritable,
    /// A protect preset matches the path or an ancestor: never writable, whatever the writable
    /// list says.
    Protected(Rule),
}

/// The compiled policy: immutable, shared by every request thread.
#[derive(Debug)]
pub struct Matcher {
    allow: List,
    transit: Transit,
    /// Enabled presets first, then the user's hide list; each keeps its own `!` scope.
    hide: Vec<List>,
    writable: List,
    protect: Vec<List>,
    symlinks: SymlinkMode,
    hardlinks: HardlinkMode,
    inodes: InodeMode,
    write_mode: WriteMode,
}

impl Policy {
    /// Compiles the policy into a [`Matcher`], reporting every invalid pattern or unknown preset.
    pub fn compile(&self) -> Result<Matcher, PolicyErrors> {
        let mut errors = PolicyErrors::new();
        let allow = List::build(self.allow(), Fold::Exact, &mut errors);
        let transit = Transit::build(self.allow());
        let mut hide = Vec::new();
        for name in self.presets() {
            if let Some(list) = preset_list(name, &mut errors) {
                hide.push(list);
            }
        }
        hide.push(List::build(self.hide(), Fold::Insensitive, &mut errors));
        let writable = List::build(&self.writable(), Fold::Exact, &mut errors);
        let mut protect = Vec::new();
        for name in self.protect() {
            if let Some(list) = preset_list(name, &mut errors) {
                protect.push(list);
            }
        }
        errors.into_result(Matcher {
            allow,
            transit,
            hide,
            writable,
            protect,
            symlinks: self.symlinks(),
            hardlinks: self.hardlinks(),
            inodes: self.inodes(),
            write_mode: self.write_mode(),
        })
    }
}

impl Matcher {
    /// The verdict of SPEC §2 on `path`, a `kind` (ancestors are directories). Hide (and the
    /// enabled presets) always win; then allow; then transit for directories; else not allowed.
    /// The root is always [`Decision::Transit`].
    pub fn decide(&self, path: &RelPath, kind: Kind) -> Decision {
        match self.judge(path.as_bytes(), kind) {
            Judged::Visible(rule) => Decision::Visible(rule.clone()),
            Judged::Transit => Decision::Transit,
            Judged::Hidden(rule) => Decision::Hidden(rule.clone()),
            Judged::NotAllowed => Decision::NotAllowed,
        }
    }

    /// `decide(path, kind).is_visible()` without copying the rule: for ASCII paths it allocates
    /// nothing, so it suits the checks on every request.
    pub fn is_visible(&self, path: &RelPath, kind: Kind) -> bool {
        matches!(
            self.judge(path.as_bytes(), kind),
            Judged::Visible(_) | Judged::Transit
        )
    }

    fn judge(&self, path: &[u8], kind: Kind) -> Judged<'_> {
        if path.is_empty() {
            return Judged::Transit;
        }
        if let Some(rule) = walk_folded(&self.hide, path, kind) {
            return Judged::Hidden(rule);
        }
        if let Some(rule) = walk(std::slice::from_ref(&self.allow), path, kind) {
            return Judged::Visible(rule);
        }
        if kind == Kind::Dir && self.transit.beneath(path) {
            return Judged::Transit;
        }
        Judged::NotAllowed
    }

    /// Whether a write to `path` is allowed by the write mode, the protect presets and the
    /// writable list. Says nothing about visibility: ask [`Matcher::decide`] first.
    pub fn writable(&self, path: &RelPath, kind: Kind) -> Writability {
        if self.write_mode == WriteMode::Deny {
            return Writability::NotWritable;
        }
        let bytes = path.as_bytes();
        if bytes.is_empty() {
            return Writability::NotWritable;
        }
        if let Some(rule) = walk_folded(&self.protect, bytes, kind) {
            return Writability::Protected(rule.clone());
        }
        match walk(std::slice::from_ref(&self.writable), bytes, kind) {
            Some(rule) => Writability::Writable(rule.clone()),
            None => Writability::NotWritable,
        }
    }

    /// Whether the writable list alone lets `path` be written, protect presets aside: in an
    /// overlay view, where `protect` is enforced at review time, what the agent may make (SPEC
    /// §3a). Says nothing about visibility.
    pub fn writable_listed(&self, path: &RelPath, kind: Kind) -> Option<&Rule> {
        if self.write_mode == WriteMode::Deny || path.as_bytes().is_empty() {
            return None;
        }
        walk(std::slice::from_ref(&self.writable), path.as_bytes(), kind)
    }

    /// `[view] symlinks`.
    pub fn symlinks(&self) -> SymlinkMode {
        self.symlinks
    }

    /// `[view] hardlinks`.
    pub fn hardlinks(&self) -> HardlinkMode {
        self.hardlinks
    }

    /// `[view] inodes`.
    pub fn inodes(&self) -> InodeMode {
        self.inodes
    }

    /// `[writes] mode`.
    pub fn write_mode(&self) -> WriteMode {
        self.write_mode
    }

    /// How many patterns were compiled, presets included.
    pub fn rule_count(&self) -> usize {
        self.allow.rules.len()
            + self.hide.iter().map(|l| l.rules.len()).sum::<usize>()
            + self.writable.rules.len()
            + self.protect.iter().map(|l| l.rules.len()).sum::<usize>()
    }
}

/// [`Decision`] with borrowed rules.
enum Judged<'a> {
    Visible(&'a Rule),
    Transit,
    Hidden(&'a Rule),
    NotAllowed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RuleOrigin;

    /// A matcher from a policy file's text.
    fn matcher(text: &str) -> Matcher {
        Policy::parse(text, None)
            .and_then(|p| p.compile())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn rel(path: &[u8]) -> RelPath {
        RelPath::parse(path).unwrap_or_default()
    }

    /// What `decide` says, in a short form for tables: "visible <pattern>", "hidden <origin>
    /// <pattern>", "transit", "not allowed".
    fn verdict(m: &Matcher, path: &[u8], kind: Kind) -> String {
        match m.decide(&rel(path), kind) {
            Decision::Visible(rule) => format!("visible {}", rule.pattern),
            Decision::Hidden(rule) => match rule.origin {
                RuleOrigin::Preset(name) => format!("hidden {name} {}", rule.pattern),
                _ => format!("hidden {}", rule.pattern),
            },
            Decision::Transit => "transit".into(),
            Decision::NotAllowed => "not allowed".into(),
        }
    }

    use Kind::{Dir, NonDir};

    fn check(m: &Matcher, table: &[(&str, Kind, &str)]) {
        for (path, kind, want) in table {
            assert_eq!(
                m.is_visible(&rel(path.as_bytes()), *kind),
                m.decide(&rel(path.as_bytes()), *kind).is_visible(),
                "{path}"
            );
            assert_eq!(
                verdict(m, path.as_bytes(), *kind),
                *want,
                "{path} ({kind:?})"
            );
        }
    }

    #[test]
    fn secrets_preset_entries() {
        let m = matcher("");
        check(
            &m,
            &[
                (".env", NonDir, "hidden secrets .env"),
                ("config/.env", NonDir, "hidden secrets .env"),
                (".env.local", NonDir, "hidden secrets .env.*"),
                (".env.production", NonDir, "hidden secrets .env.*"),
                (".env.example", NonDir, "visible **"),
                ("app/.env.sample", NonDir, "visible **"),
                (".env.template", NonDir, "visible **"),
                (".env~", NonDir, "hidden secrets .env~"),
                (".env.swp", NonDir, "hidden secrets .env*.sw?"),
                ("#.env#", NonDir, "hidden secrets \\#.env#"),
                (".env.bak", NonDir, "hidden secrets .env*.bak"),
                ("tls/server.pem", NonDir, "hidden secrets *.pem"),
                ("server.key", NonDir, "hidden secrets *.key"),
                ("a.p12", NonDir, "hidden secrets *.p12"),
                ("a.pfx", NonDir, "hidden secrets *.pfx"),
                ("a.jks", NonDir, "hidden secrets *.jks"),
                ("release.keystore", NonDir, "hidden secrets *.keystore"),
                ("vault.kdbx", NonDir, "hidden secrets *.kdbx"),
                ("id_rsa", NonDir, "hidden secrets id_rsa*"),
                ("home/u/id_rsa.pub", NonDir, "hidden secrets id_rsa*"),
                ("id_dsa", NonDir, "hidden secrets id_dsa*"),
                ("id_ecdsa_sk", NonDir, "hidden secrets id_ecdsa*"),
                ("id_ed25519", NonDir, "hidden secrets id_ed25519*"),
                (".ssh", Dir, "hidden secrets .ssh"),
                (".ssh/config", NonDir, "hidden secrets .ssh"),
                ("u/.gnupg/pubring.kbx", NonDir, "hidden secrets .gnupg"),
                (".aws/credentials", NonDir, "hidden secrets .aws"),
                (".azure", Dir, "hidden secrets .azure"),
                (
                    ".config/gcloud/creds.db",
                    NonDir,
                    "hidden secrets **/.config/gcloud",
                ),
                ("u/.config/gcloud", Dir, "hidden secrets **/.config/gcloud"),
                (".config/other", NonDir, "visible **"),
                (".kube/config", NonDir, "hidden secrets .kube"),
                ("kubeconfig", NonDir, "hidden secrets kubeconfig"),
                (
                    ".docker/config.json",
                    NonDir,
                    "hidden secrets **/.docker/config.json",
                ),
                (".docker/other.json", NonDir, "visible **"),
                (".npmrc", NonDir, "hidden secrets .npmrc"),
                (".pypirc", NonDir, "hidden secrets .pypirc"),
                (".netrc", NonDir, "hidden secrets .netrc"),
                ("_netrc", NonDir, "hidden secrets _netrc"),
                (
                    ".git-credentials",
                    NonDir,
                    "hidden secrets .git-credentials",
                ),
                (".pgpass", NonDir, "hidden secrets .pgpass"),
                (".my.cnf", NonDir, "hidden secrets .my.cnf"),
                (".vault-token", NonDir, "hidden secrets .vault-token"),
                (
                    "infra/terraform.tfstate",
                    NonDir,
                    "hidden secrets *.tfstate",
                ),
                (
                    "terraform.tfstate.backup",
                    NonDir,
                    "hidden secrets *.tfstate.backup",
                ),
                ("prod.tfvars", NonDir, "hidden secrets *.tfvars"),
                (
                    "credentials.json",
                    NonDir,
                    "hidden secrets credentials.json",
                ),
                ("config/secrets.yml", NonDir, "hidden secrets secrets.*"),
                (".htpasswd", NonDir, "hidden secrets .htpasswd"),
                ("src/main.rs", NonDir, "visible **"),
                ("environment.txt", NonDir, "visible **"),
                (".envrc", NonDir, "visible **"),
            ],
        );
    }

    #[test]
    fn hide_is_case_insensitive_and_folds_unicode() {
        let m = matcher("[view]\nhide = [\"build.LOG\"]\n");
        check(
            &m,
            &[
                (".ENV", NonDir, "hidden secrets .env"),
                (".Env", NonDir, "hidden secrets .env"),
                ("a/.eNv.LOCAL", NonDir, "hidden secrets .env.*"),
                ("KEY.PEM", NonDir, "hidden secrets *.pem"),
                (".SSH/id", NonDir, "hidden secrets .ssh"),
                ("build.log", NonDir, "hidden build.LOG"),
                // fullwidth letters fold to ".env" under NFKC
                (
                    "\u{ff0e}\u{ff45}\u{ff4e}\u{ff56}",
                    NonDir,
                    "hidden secrets .env",
                ),
                ("x/.\u{ff25}NV", NonDir, "hidden secrets .env"),
                // KELVIN SIGN folds to "k": ".kube"
                (".\u{212a}ube/config", NonDir, "hidden secrets .kube"),
                ("caf\u{e9}.txt", NonDir, "visible **"),
            ],
        );
        // non-ASCII letters fold too, whichever side is upper case
        let m =
            matcher("[view]\nhide = [\"\u{c9}T\u{c9}.txt\", \"\u{3a9}*\", \"!\u{3a9}MEGA.md\"]\n");
        check(
            &m,
            &[
                ("\u{e9}t\u{e9}.txt", NonDir, "hidden \u{c9}T\u{c9}.txt"),
                ("\u{c9}t\u{e9}.TXT", NonDir, "hidden \u{c9}T\u{c9}.txt"),
                ("\u{3c9}mega", NonDir, "hidden \u{3a9}*"),
                ("\u{3a9}MEGA", NonDir, "hidden \u{3a9}*"),
                ("\u{3a9}MEGA.MD", NonDir, "visible **"),
                ("\u{3c9}mega.md", NonDir, "visible **"),
            ],
        );
        // allow is exact: a differently cased name is not allowed
        let m = matcher("[view]\nallow = [\"src/\"]\npresets = []\n");
        check(
            &m,
            &[
                ("src/a.rs", NonDir, "visible src/"),
                ("SRC/a.rs", NonDir, "not allowed"),
                // "src/" has no inner slash, so it may match at any depth: SRC is on the way
                ("SRC", Dir, "transit"),
            ],
        );
    }

    #[test]
    fn allow_covers_descendants_and_hide_wins() {
        let m = matcher(
            "[view]\nallow = [\"src/\", \"README.md\", \"/Cargo.toml\"]\nhide = [\"src/gen/\", \"*.log\"]\n",
        );
        check(
            &m,
            &[
                ("src", Dir, "visible src/"),
                ("src/a/b/c.rs", NonDir, "visible src/"),
                ("lib/src/x.rs", NonDir, "visible src/"),
                ("src/gen", Dir, "hidden src/gen/"),
                ("src/gen/x.rs", NonDir, "hidden src/gen/"),
                ("src/debug.log", NonDir, "hidden *.log"),
                ("src/.env", NonDir, "hidden secrets .env"),
                ("README.md", NonDir, "visible README.md"),
                ("docs/README.md", NonDir, "visible README.md"),
                ("Cargo.toml", NonDir, "visible /Cargo.toml"),
                ("sub/Cargo.toml", NonDir, "not allowed"),
                ("notes.txt", NonDir, "not allowed"),
            ],
        );
    }

    #[test]
    fn anchoring_and_dir_only() {
        let m = matcher(
            "[view]\nallow = [\"**\"]\nhide = [\"/build\", \"logs/\", \"a/b\"]\npresets = []\n",
        );
        check(
            &m,
            &[
                ("build", Dir, "hidden /build"),
                ("build", NonDir, "hidden /build"),
                ("build/x", NonDir, "hidden /build"),
                ("src/build", Dir, "visible **"),
                ("logs", Dir, "hidden logs/"),
                ("x/logs", Dir, "hidden logs/"),
                ("x/logs/today", NonDir, "hidden logs/"),
                ("logs", NonDir, "visible **"),
                ("a/b", NonDir, "hidden a/b"),
                ("x/a/b", NonDir, "visible **"),
            ],
        );
    }

    #[test]
    fn negation_stays_within_its_list_and_above_excluded_dirs() {
        let m = matcher(
            "[view]\nhide = [\"secrets/\", \"!secrets/public.txt\", \"*.txt\", \"!keep.txt\", \"!.env\"]\n",
        );
        check(
            &m,
            &[
                // never beneath a directory the list excluded as a whole
                ("secrets/public.txt", NonDir, "hidden secrets/"),
                ("secrets", Dir, "hidden secrets/"),
                // later lines win
                ("notes.txt", NonDir, "hidden *.txt"),
                ("keep.txt", NonDir, "visible **"),
                ("d/KEEP.TXT", NonDir, "visible **"),
                // a `!` in the hide list cannot re-include what a preset hides
                (".env", NonDir, "hidden secrets .env"),
            ],
        );
        // the same rule for allow: `!` cannot carve out of an allowed directory
        let m = matcher("[view]\nallow = [\"src/\", \"!src/gen/\", \"*.md\", \"!draft.md\"]\n");
        check(
            &m,
            &[
                ("src/gen/x.rs", NonDir, "visible src/"),
                ("a.md", NonDir, "visible *.md"),
                ("draft.md", NonDir, "not allowed"),
            ],
        );
    }

    #[test]
    fn double_star() {
        let m = matcher(
            "[view]\nallow = [\"docs/**/*.md\", \"assets/**\"]\nhide = [\"**/tmp/**\"]\npresets = []\n",
        );
        check(
            &m,
            &[
                ("docs/a.md", NonDir, "visible docs/**/*.md"),
                ("docs/x/y/a.md", NonDir, "visible docs/**/*.md"),
                ("docs/a.txt", NonDir, "not allowed"),
                ("docs", Dir, "transit"),
                ("docs/x", Dir, "transit"),
                ("assets", Dir, "transit"),
                ("assets/logo.png", NonDir, "visible assets/**"),
                ("assets/tmp", Dir, "visible assets/**"),
                ("assets/tmp/x", NonDir, "hidden **/tmp/**"),
                ("other", Dir, "not allowed"),
            ],
        );
    }

    #[test]
    fn transit() {
        let m = matcher("[view]\nallow = [\"src/lib/\", \"/tests/unit/*.rs\"]\n");
        check(
            &m,
            &[
                ("", Dir, "transit"),
                ("src", Dir, "transit"),
                ("src/lib", Dir, "visible src/lib/"),
                ("src/lib/x.rs", NonDir, "visible src/lib/"),
                ("src/bin", Dir, "not allowed"),
                ("src/x.rs", NonDir, "not allowed"),
                ("src", NonDir, "not allowed"),
                ("tests", Dir, "transit"),
                ("tests/unit", Dir, "transit"),
                ("tests/unit/a.rs", NonDir, "visible /tests/unit/*.rs"),
                ("tests/unit/deeper", Dir, "not allowed"),
                ("tests/other", Dir, "not allowed"),
                (".ssh", Dir, "hidden secrets .ssh"),
            ],
        );
        // a pattern without a slash can match at any depth: every directory is on the way
        let m = matcher("[view]\nallow = [\"*.rs\"]\n");
        check(
            &m,
            &[
                ("a/b/c", Dir, "transit"),
                ("a/b/c.rs", NonDir, "visible *.rs"),
                ("a/b/c.txt", NonDir, "not allowed"),
                (".aws", Dir, "hidden secrets .aws"),
            ],
        );
        let m = matcher("[view]\nallow = [\"**/fixtures/\"]\n");
        check(&m, &[("x/y", Dir, "transit")]);
    }

    #[test]
    fn non_utf8_names_match_bytewise() {
        let m = matcher("[view]\nhide = [\"*.bin\"]\n");
        assert_eq!(verdict(&m, b"\xff\xfe.env", NonDir), "visible **");
        assert_eq!(verdict(&m, b"d\xff/.env", NonDir), "hidden secrets .env");
        assert_eq!(verdict(&m, b"\xff.BIN", NonDir), "hidden *.bin");
        assert_eq!(verdict(&m, b".ssh/\xff", NonDir), "hidden secrets .ssh");
        // a UTF-8 component next to a non-UTF-8 one is still folded
        assert_eq!(
            verdict(&m, b"\xff/\xef\xbc\x8eenv", NonDir),
            "hidden secrets .env"
        );
        // TOML's "\xff" is U+00FF, two bytes in UTF-8: it must not match the single byte 0xFF
        // TOML's "\xff" is U+00FF, two bytes in UTF-8: it must not match the single byte 0xFF
        let m = matcher("[view]\nallow = [\"d\\xff\"]\n");
        assert_eq!(verdict(&m, b"d\xff", NonDir), "not allowed");
    }

    #[test]
    fn writability() {
        let m = matcher("[writes]\nmode = \"overlay\"\nwritable = [\"src/\", \".git/\"]\n");
        let w = |p: &str, k| m.writable(&rel(p.as_bytes()), k);
        let rule = |pattern: &str, line| Rule {
            origin: RuleOrigin::File {
                path: "<policy>".into(),
                line,
            },
            pattern: pattern.into(),
        };
        assert_eq!(
            w("src/a.rs", NonDir),
            Writability::Writable(rule("src/", 3))
        );
        assert_eq!(w("README.md", NonDir), Writability::NotWritable);
        let protected = |pattern: &str| {
            Writability::Protected(Rule {
                origin: RuleOrigin::Preset("exec-config"),
                pattern: pattern.into(),
            })
        };
        assert_eq!(w(".git/config", NonDir), protected("**/.git/config"));
        assert_eq!(
            w(".git/hooks/pre-commit", NonDir),
            protected("**/.git/hooks")
        );
        assert_eq!(w("src/.vscode/tasks.json", NonDir), protected(".vscode"));
        assert_eq!(
            w(".github/workflows/ci.yml", NonDir),
            protected("**/.github/workflows")
        );
        assert_eq!(w(".BASHRC", NonDir), protected(".bashrc"));
        assert_eq!(
            w(".git/HEAD", NonDir),
            Writability::Writable(rule(".git/", 3))
        );

        let deny = matcher("");
        assert_eq!(
            deny.writable(&rel(b"src/a.rs"), NonDir),
            Writability::NotWritable
        );
        let default = matcher("[writes]\nmode = \"direct\"\nprotect = []\n");
        assert!(matches!(
            default.writable(&rel(b".git/config"), NonDir),
            Writability::Writable(Rule {
                origin: RuleOrigin::Default,
                ..
            })
        ));
    }

    #[test]
    fn rules_carry_their_line() {
        let m = matcher("[view]\nhide = [\n  \"a\",\n  \"b\",\n  \"a\",\n]\n");
        assert_eq!(
            m.decide(&rel(b"a"), NonDir),
            Decision::Hidden(Rule {
                origin: RuleOrigin::File {
                    path: "<policy>".into(),
                    line: 5
                },
                pattern: "a".into()
            })
        );
    }

    /// A hide list too large for one automaton of the glob engine (about 7,500 patterns like
    /// these fit) compiles in parts and decides as one list: later lines win across parts.
    #[test]
    fn ten_thousand_hide_patterns_compile_and_match_in_order() {
        let mut text = String::from("[view]\nhide = [\n");
        for i in 0..10_000 {
            text.push_str(&format!("  \"private{i:05}/\",\n"));
        }
        text.push_str("  \"!private00007/\",\n]\n");
        let m = matcher(&text);
        assert!(m.hide.last().is_some_and(|l| l.parts.len() > 1));
        for i in [0, 4_999, 5_000, 9_999] {
            let path = format!("private{i:05}/a.txt");
            assert_eq!(
                m.decide(&rel(path.as_bytes()), NonDir),
                Decision::Hidden(Rule {
                    origin: RuleOrigin::File {
                        path: "<policy>".into(),
                        line: i + 3
                    },
                    pattern: format!("private{i:05}/")
                }),
                "{path}"
            );
            let file = format!("private{i:05}");
            assert!(m.is_visible(&rel(file.as_bytes()), NonDir), "{file}");
        }
        // The last line, in the last part, re-includes what a line of the first part hid.
        assert!(m.is_visible(&rel(b"private00007/keep.txt"), NonDir));
        assert!(!m.is_visible(&rel(b"PRIVATE00008/keep.txt"), NonDir));
    }

    #[test]
    fn a_pattern_too_complex_to_compile_is_named_with_its_line() {
        let alternatives: Vec<String> = (0..20_000)
            .map(|i| format!("*[a-z]n{i:05}*[0-9]"))
            .collect();
        let text = format!(
            "[view]\nhide = [\n  \"ok.txt\",\n  \"{{{}}}\",\n]\n",
            alternatives.join(",")
        );
        let err = Policy::parse(&text, None)
            .and_then(|p| p.compile())
            .unwrap_err();
        let first = err.first_line();
        assert!(
            first.starts_with("<policy>:4:3: \"{*[a-z]n00000")
                && first.contains("is too complex to compile")
                && first.len() < 200,
            "{first}"
        );
    }

    #[test]
    fn vcs_preset() {
        let m = matcher("[view]\npresets = [\"vcs\"]\n");
        check(
            &m,
            &[
                (".git", Dir, "hidden vcs .git"),
                (".git", NonDir, "hidden vcs .git"),
                ("sub/.git/config", NonDir, "hidden vcs .git"),
                (".hg/store", NonDir, "hidden vcs .hg"),
                (".svn", Dir, "hidden vcs .svn"),
                (".gitignore", NonDir, "visible **"),
                // secrets is off once presets is given without it
                (".env", NonDir, "visible **"),
            ],
        );
    }

    #[test]
    fn matcher_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Matcher>();
        assert!(Policy::builtin().compile().is_ok());
        assert!(
            Policy::builtin()
                .compile()
                .map(|m| m.rule_count())
                .unwrap_or(0)
                > 40
        );
    }
}
