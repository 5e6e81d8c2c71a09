//! README and docs/ stay short where they should, self-contained, linked and true: README fits
//! in 250 lines, nothing names a document outside the repository, every relative link (a file,
//! or a heading within one) resolves, and README's policy passes `scopefs check`. No FUSE
//! needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no pages");
    pages.extend(docs);
    pages
}

/// The anchor GitHub gives a heading: lowercase, punctuation but `-` and `_` dropped, spaces as
/// `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every `](target)` of a page, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn readme_is_at_most_250_lines() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; reference goes to docs/"
    );
    for command in ["scripts/demo.sh", "scripts/test.sh", "scripts/install.sh"] {
        assert!(readme.contains(command), "README names {command}");
        assert!(repo().join(command).exists(), "{command} exists");
    }
}

#[test]
fn nothing_refers_to_documents_outside_the_repository() {
    for page in pages() {
        let text = fs::read_to_string(&page).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in ["shared/", "SPEC", "THREATS", "contract", "§"] {
                assert!(
                    !line.contains(word),
                    "{}:{}: {word:?} names something outside the repository: {line}",
                    page.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn every_relative_link_resolves() {
    for page in pages() {
        let text = fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (file, anchor) = match link.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target: &Path = if file.is_empty() {
                &page
            } else {
                &dir.join(file)
            };
            assert!(
                target.exists(),
                "{}: the link {link:?} leads nowhere",
                page.display()
            );
            if let Some(anchor) = anchor {
                let heads = anchors(&fs::read_to_string(target).unwrap());
                assert!(
                    heads.contains(anchor),
                    "{}: the link {link:?} names no heading of {}; it has {heads:?}",
                    page.display(),
                    target.display()
                );
            }
        }
    }
}

#[test]
fn readme_policy_checks_clean() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("README shows a policy in a ```toml block")
        .0;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    fs::write(&policy, block).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scopefs"))
        .arg("check")
        .arg("-c")
        .arg(&policy)
        .arg(repo().join("examples/sample-project"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "README's policy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
