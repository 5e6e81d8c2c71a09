//! Checks one pattern before it is compiled, so a mistake is reported with its position instead
//! of silently matching nothing (or, for a hide rule, silently hiding nothing).
//!
//! Patterns are gitignore lines relative to SOURCE. Refused: the empty pattern, comments (`#...`),
//! unescaped trailing whitespace (gitignore drops it), NUL bytes, `.` and `..` components,
//! absolute paths, and glob syntax errors. This module never matches anything.

use ignore::gitignore::GitignoreBuilder;

/// Top-level directories of Linux and macOS hosts. A pattern such as `/etc/passwd` or
/// `/home/me/project/.env` is almost certainly meant as a host path, which a pattern relative to
/// SOURCE can never be; `/build` (one component) stays a valid root-anchored pattern.
const HOST_ROOTS: &[&str] = &[
    "boot", "dev", "etc", "home", "media", "mnt", "nix", "opt", "private", "proc", "root", "run",
    "srv", "sys", "tmp", "usr", "var", "Users", "Volumes",
];

/// Why `pattern` cannot be used, as a message that names the problem and the fix; `None` when it
/// is fine.
pub fn problem(pattern: &str) -> Option<String> {
    if pattern.contains('\0') {
        return Some("the pattern contains a NUL byte, which no file name can; remove it".into());
    }
    if pattern.trim().is_empty() {
        return Some("empty pattern: it matches nothing; remove it".into());
    }
    if pattern.starts_with('#') {
        return Some(format!(
            "{pattern:?} starts with `#`, which gitignore reads as a comment; write \"\\{pattern}\" \
             to match a name starting with `#`"
        ));
    }
    if has_unescaped_trailing_space(pattern) {
        return Some(format!(
            "{pattern:?} ends with whitespace, which gitignore ignores; remove it, or escape the \
             last space with `\\` if the name really ends with one"
        ));
    }
    let body = pattern.strip_prefix('!').unwrap_or(pattern);
    if body.is_empty() || body == "/" {
        return Some(format!(
            "{pattern:?} negates nothing; write the path to re-include after `!`, or remove it"
        ));
    }
    if let Some(message) = absolute_problem(pattern, body) {
        return Some(message);
    }
    let inner = body.trim_start_matches('/').trim_end_matches('/');
    for component in inner.split('/') {
        match component {
            ".." => {
                return Some(format!(
                    "{pattern:?} has a `..` component; patterns cannot reach outside SOURCE and \
                     are not normalised, so write the path without `..`"
                ));
            }
            "." => {
                return Some(format!(
                    "{pattern:?} has a `.` component, which never matches; remove it (start the \
                     pattern with `/` to anchor it at SOURCE)"
                ));
            }
            "" => {
                return Some(format!(
                    "{pattern:?} has an empty component (`//`), which never matches; use a single \
                     `/`"
                ));
            }
            _ => {}
        }
    }
    glob_problem(pattern)
}

fn has_unescaped_trailing_space(pattern: &str) -> bool {
    let trimmed = pattern.trim_end();
    if trimmed.len() == pattern.len() {
        return false;
    }
    // gitignore keeps one trailing space escaped with a backslash.
    !(trimmed.ends_with('\\') && pattern.len() - trimmed.len() == 1)
}

fn absolute_problem(pattern: &str, body: &str) -> Option<String> {
    let relative = body.trim_start_matches('/');
    let drive_letter = body.as_bytes().get(1) == Some(&b':')
        && body.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
    let host_root = body.starts_with('/')
        && relative
            .trim_end_matches('/')
            .split_once('/')
            .is_some_and(|(first, _)| HOST_ROOTS.contains(&first));
    let looks_absolute =
        body.starts_with("//") || body.starts_with('~') || drive_letter || host_root;
    if !looks_absolute {
        return None;
    }
    let negation = if pattern.starts_with('!') { "!" } else { "" };
    Some(format!(
        "{pattern:?} looks like an absolute path, but patterns are relative to SOURCE; write it \
         relative to SOURCE, e.g. \"{negation}{}\" (a pattern with a `/` inside is already \
         anchored at SOURCE)",
        relative.trim_start_matches('~').trim_start_matches('/')
    ))
}

/// A warning for an allow pattern that names a directory without anchoring it (`src/`): it
/// matches a directory of that name at any depth, which is rarely what is meant. `None` for an
/// anchored pattern (`/src/`, `src/lib/`), a glob (`*/`, `**/x/`) or a pattern that is not a
/// directory's.
pub fn unanchored_directory(pattern: &str) -> Option<String> {
    let body = pattern.strip_prefix('!').unwrap_or(pattern);
    let name = body.strip_suffix('/')?;
    if name.is_empty()
        || name.contains('/')
        || name.contains(['*', '?', '[', '\\'])
        || problem(pattern).is_some()
    {
        return None;
    }
    let negation = if pattern.starts_with('!') { "!" } else { "" };
    Some(format!(
        "{pattern:?} matches a directory named {name:?} at any depth (say vendor/x/{name}/ too); \
         write \"{negation}/{name}/\" for the top-level one only, or \"{negation}**/{name}/\" to \
         say any depth is meant"
    ))
}

fn glob_problem(pattern: &str) -> Option<String> {
    let mut builder = GitignoreBuilder::new(".");
    builder.allow_unclosed_class(false);
    match builder.add_line(None, pattern) {
        Ok(_) => None,
        Err(err) => Some(format!(
            "{pattern:?} is not a valid glob ({}); fix the syntax, or escape special characters \
             with `\\`",
            glob_error_text(&err)
        )),
    }
}

fn glob_error_text(err: &ignore::Error) -> String {
    match err {
        ignore::Error::Glob { err, .. } => err.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_patterns_pass() {
        for pattern in [
            "**",
            "*.pem",
            "/build",
            "/build/",
            "logs/",
            "src/lib/",
            "docs/**/*.md",
            "!.env.example",
            "\\#.env#",
            ".env~",
            "a\\ ",
            "[abc].txt",
            "/lib/x",
            "etc/passwd",
            "name with space",
        ] {
            assert_eq!(problem(pattern), None, "{pattern}");
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        for (pattern, needle) in [
            ("", "empty pattern"),
            ("   ", "empty pattern"),
            ("!", "negates nothing"),
            ("#x", "comment"),
            ("x ", "whitespace"),
            ("../x", "`..`"),
            ("a/../b", "`..`"),
            ("!../x", "`..`"),
            ("./x", "`.` component"),
            ("a//b", "empty component"),
            ("/etc/passwd", "absolute"),
            ("/home/me/p/.env", "absolute"),
            ("!/Users/me/x", "absolute"),
            ("//x", "absolute"),
            ("~/.ssh", "absolute"),
            ("C:/x", "absolute"),
            ("[abc", "not a valid glob"),
            ("a\0b", "NUL"),
        ] {
            let got = problem(pattern).unwrap_or_default();
            assert!(got.contains(needle), "{pattern:?}: {got}");
        }
    }

    #[test]
    fn unanchored_directories_are_told_apart() {
        for pattern in ["src/", "!gen/", "node_modules/"] {
            assert!(unanchored_directory(pattern).is_some(), "{pattern}");
        }
        let got = unanchored_directory("src/").unwrap_or_default();
        assert!(got.contains("\"/src/\""), "{got}");
        for pattern in [
            "/src/", "src/lib/", "**/src/", "*/", "src", "*.rs", "**", "a?/", "[ab]/", "/", "../x/",
        ] {
            assert_eq!(unanchored_directory(pattern), None, "{pattern}");
        }
    }

    #[test]
    fn absolute_fix_suggests_the_relative_form() {
        let got = problem("/etc/passwd").unwrap_or_default();
        assert!(got.contains("\"etc/passwd\""), "{got}");
    }
}
