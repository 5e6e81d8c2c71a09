//! A small policy built from the input, compiled, and asked about paths from the input.
//!
//! Input: lines. `+PATTERN` is an allow pattern, `-PATTERN` a hide pattern, `@NAME` enables a
//! preset (none unless one is named); any other line is a path, parsed with `RelPath::parse`.
//! Checked for every path and both kinds: nothing panics; `is_visible` agrees with `decide`;
//! only directories are ever transit; anything beneath a hidden directory is hidden; anything
//! beneath an allowed directory is allowed or hidden; and a visible path can be reached, every
//! ancestor being visible too.

use scopefs::path::RelPath;
use scopefs::policy::{Decision, Kind, Matcher, Policy};

/// Checks one input; panics on a finding.
pub fn run(data: &[u8]) {
    let mut allow = Vec::new();
    let mut hide = Vec::new();
    let mut presets = Vec::new();
    let mut paths = vec![RelPath::root()];
    for line in data.split(|b| *b == b'\n') {
        match line.split_first() {
            Some((b'+', rest)) => allow.push(String::from_utf8_lossy(rest).into_owned()),
            Some((b'-', rest)) => hide.push(String::from_utf8_lossy(rest).into_owned()),
            Some((b'@', rest)) => presets.push(String::from_utf8_lossy(rest).into_owned()),
            _ => {
                if let Ok(path) = RelPath::parse(line) {
                    paths.push(path);
                }
            }
        }
    }
    if paths.len() > 16 || allow.len() + hide.len() > 32 {
        return;
    }
    let Some(matcher) = compile(&allow, &hide, &presets) else {
        return;
    };
    for path in &paths {
        for kind in [Kind::Dir, Kind::NonDir] {
            check(&matcher, path, kind);
        }
    }
}

/// The matcher of a policy with these lists; an invalid pattern is dropped, so one bad line does
/// not waste the input.
fn compile(allow: &[String], hide: &[String], presets: &[String]) -> Option<Matcher> {
    let text = policy_text(allow, hide, presets);
    if let Ok(policy) = Policy::parse(&text, None) {
        return Some(policy.compile().unwrap_or_else(|e| panic!("{e}\n{text}")));
    }
    let valid = |list: &[String], key: &str| -> Vec<String> {
        list.iter()
            .filter(|p| Policy::parse(&format!("[view]\n{key} = [{}]\n", quote(p)), None).is_ok())
            .cloned()
            .collect()
    };
    let presets: Vec<String> = presets
        .iter()
        .filter(|p| matches!(p.as_str(), "secrets" | "vcs" | "exec-config"))
        .cloned()
        .collect();
    let text = policy_text(&valid(allow, "allow"), &valid(hide, "hide"), &presets);
    let policy = Policy::parse(&text, None).ok()?;
    Some(policy.compile().unwrap_or_else(|e| panic!("{e}\n{text}")))
}

fn policy_text(allow: &[String], hide: &[String], presets: &[String]) -> String {
    let list = |items: &[String]| {
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = String::from("[view]\n");
    if !allow.is_empty() {
        text.push_str(&format!("allow = [{}]\n", list(allow)));
    }
    text.push_str(&format!("hide = [{}]\n", list(hide)));
    text.push_str(&format!("presets = [{}]\n", list(presets)));
    // Writes stay denied and unprotected: this target is about visibility, and every list left
    // out is one regex set fewer to build per input.
    text.push_str("[writes]\nprotect = []\n");
    text
}

/// A TOML basic string holding `s` exactly.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn check(matcher: &Matcher, path: &RelPath, kind: Kind) {
    let decision = matcher.decide(path, kind);
    assert_eq!(
        matcher.is_visible(path, kind),
        decision.is_visible(),
        "is_visible disagrees with decide on {path:?} ({kind:?}): {decision:?}"
    );
    if path.is_root() {
        assert_eq!(decision, Decision::Transit, "the root");
        return;
    }
    if kind == Kind::NonDir {
        assert_ne!(decision, Decision::Transit, "{path:?} is not a directory");
    }
    let mut ancestor = path.clone();
    while ancestor.pop() {
        let above = matcher.decide(&ancestor, Kind::Dir);
        match &above {
            Decision::Hidden(_) => assert!(
                matches!(decision, Decision::Hidden(_)),
                "{path:?} ({kind:?}) is {decision:?} beneath hidden {ancestor:?}: {above:?}"
            ),
            Decision::Visible(_) => assert!(
                matches!(decision, Decision::Visible(_) | Decision::Hidden(_)),
                "{path:?} ({kind:?}) is {decision:?} beneath allowed {ancestor:?}: {above:?}"
            ),
            Decision::Transit | Decision::NotAllowed => {}
        }
        if decision.is_visible() {
            assert!(
                above.is_visible(),
                "{path:?} ({kind:?}) is {decision:?} but its ancestor {ancestor:?} is {above:?}"
            );
        }
    }
}
