//! Arbitrary text as a policy file: `Policy::parse` and, when it parses, `compile` must never
//! panic; every error must say where it is, and every pattern read from the text must name its
//! line; a policy that `check` accepts must compile.

use scopefs::path::RelPath;
use scopefs::policy::{Kind, Location, Pattern, Policy, PolicyErrors, RuleOrigin};

/// Checks one input; panics on a finding.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Policy::parse(&text, None) {
        Err(errors) => check_errors(&text, &errors),
        Ok(policy) => {
            for pattern in policy.allow().iter().chain(policy.hide()) {
                check_pattern(&text, pattern);
            }
            for pattern in &policy.writable() {
                check_pattern(&text, pattern);
            }
            match policy.compile() {
                Ok(matcher) => {
                    for path in [&b".env"[..], b"src/main.rs", b".git/config", b"a/b/c"] {
                        let path = RelPath::parse(path).unwrap_or_default();
                        for kind in [Kind::Dir, Kind::NonDir] {
                            let _ = matcher.decide(&path, kind);
                            let _ = matcher.writable(&path, kind);
                        }
                    }
                }
                Err(errors) => panic!("a policy that parses does not compile:\n{errors}"),
            }
        }
    }
}

/// Every error of text parsed without a file is at a line and column of that text.
fn check_errors(text: &str, errors: &PolicyErrors) {
    assert!(!errors.is_empty(), "an error result with no error");
    let lines = text.matches('\n').count() + 1;
    for error in errors.iter() {
        match &error.location {
            Location::File {
                file: None,
                line,
                column,
            } => {
                assert!(
                    (1..=lines).contains(line),
                    "line {line} of {lines}: {error}"
                );
                assert!(*column >= 1, "column 0: {error}");
            }
            other => panic!("an error in policy text located at {other:?}: {error}"),
        }
        assert!(!error.message.is_empty(), "an error without a message");
    }
    let _ = errors.to_string();
    let _ = errors.first_line();
}

/// A pattern read from the text names a line of it; a default one says it is the default.
fn check_pattern(text: &str, pattern: &Pattern) {
    let lines = text.matches('\n').count() + 1;
    match &pattern.rule.origin {
        RuleOrigin::File { line, .. } => {
            assert!(
                (1..=lines).contains(line),
                "pattern {pattern:?} at line {line}"
            );
        }
        RuleOrigin::Default => assert_eq!(pattern.text(), "**"),
        other => panic!("a pattern of policy text from {other:?}"),
    }
    let _ = pattern.location().to_string();
}
