//! The manual pages `scopefs man` writes: `scopefs(1)` and one `scopefs-SUBCOMMAND(1)` per
//! subcommand, generated from the clap definitions with an EXAMPLES section each, and
//! `scopefs-policy(5)`, the policy format, made from `docs/policy.md` so that the two never
//! differ.

use std::io::{self, Write};

use clap::Command;
use clap_mangen::Man;

/// The policy reference, as the repository documents it.
const POLICY_MD: &str = include_str!("../../docs/policy.md");

/// One manual page: its file name and its roff text.
pub struct Page {
    pub file: String,
    pub text: Vec<u8>,
}

/// `scopefs(1)`.
pub fn top(cmd: &Command) -> io::Result<Page> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    command_page(&cmd, "")
}

/// Every page: `scopefs(1)`, one per visible subcommand, and `scopefs-policy(5)`.
pub fn all(cmd: &Command) -> io::Result<Vec<Page>> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![command_page(&cmd, "")?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(command_page(sub, sub.get_name())?);
    }
    pages.push(policy_page()?);
    Ok(pages)
}

/// A section 1 page: clap's sections, then EXAMPLES and SEE ALSO, then the version.
fn command_page(cmd: &Command, sub: &str) -> io::Result<Page> {
    let man = Man::new(cmd.clone());
    let mut text = Vec::new();
    man.render_title(&mut text)?;
    man.render_name_section(&mut text)?;
    man.render_synopsis_section(&mut text)?;
    man.render_description_section(&mut text)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut text)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut text)?;
    }
    let examples = examples(sub);
    if !examples.is_empty() {
        writeln!(text, ".SH EXAMPLES")?;
        for (what, command) in examples {
            writeln!(text, ".PP\n{}\n.PP\n.RS 4\n.nf", escape(what))?;
            for line in command.lines() {
                writeln!(text, "{}", escape(line))?;
            }
            writeln!(text, ".fi\n.RE")?;
        }
    }
    writeln!(text, ".SH \"SEE ALSO\"")?;
    let mut also = vec!["\\fBscopefs\\-policy\\fR(5)".to_string()];
    if !sub.is_empty() {
        also.insert(0, "\\fBscopefs\\fR(1)".to_string());
    }
    writeln!(text, "{}", also.join(", "))?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut text)?;
    }
    Ok(Page {
        file: man.get_filename(),
        text,
    })
}

/// What each page shows by example: what it does, then the command.
fn examples(sub: &str) -> &'static [(&'static str, &'static str)] {
    match sub {
        "" => &[
            (
                "Look at a project the way an agent would, then unmount:",
                "scopefs mount ~/project /tmp/view\nls -la /tmp/view\nscopefs umount /tmp/view",
            ),
            (
                "Run an agent in a view whose changes go to an overlay for review:",
                "scopefs run -c examples/policies/coding-agent.toml --keep-overlay ~/project -- my-agent",
            ),
        ],
        "mount" => &[
            (
                "A read-only view with secrets hidden (the built-in default):",
                "scopefs mount ~/project /tmp/view",
            ),
            (
                "Writes to src/ and tests/ go to an overlay, reviewed afterwards:",
                "scopefs mount --overlay /tmp/agent-overlay --writable /src/ --writable /tests/ ~/project /tmp/view",
            ),
            (
                "Stay attached and log every request:",
                "RUST_LOG=debug scopefs mount --foreground -c policy.toml ~/project /tmp/view",
            ),
        ],
        "run" => &[
            (
                "Run a shell at the project's own path, with the real directory out of reach:",
                "cd ~/project && scopefs run --in-place . -- bash",
            ),
            (
                "Run the tests as the invoking user in CI, writing only build output:",
                "sudo scopefs run --user \"$USER\" -c examples/policies/ci-harness.toml --in-place . -- make test",
            ),
        ],
        "umount" => &[
            (
                "Unmount and wait for the daemon:",
                "scopefs umount /tmp/view",
            ),
            ("Detach a busy view now:", "scopefs umount --lazy /tmp/view"),
        ],
        "status" => &[
            ("Every live view of yours:", "scopefs status"),
            ("One view, as JSON:", "scopefs status --json /tmp/view"),
        ],
        "reload" => &[(
            "Edit the policy file, then put it in force:",
            "$EDITOR policy.toml && scopefs reload /tmp/view",
        )],
        "explain" => &[
            (
                "Why each path is shown or hidden:",
                "scopefs explain ~/project .env src/main.rs",
            ),
            (
                "The whole view as a tree, without mounting:",
                "scopefs explain -c policy.toml ~/project --tree",
            ),
        ],
        "check" => &[(
            "Check a policy file against a project, as mount would:",
            "scopefs check -c policy.toml ~/project",
        )],
        "diff" => &[
            ("What the agent changed:", "scopefs diff /tmp/agent-overlay"),
            (
                "With unified diffs:",
                "scopefs diff --patch /tmp/agent-overlay",
            ),
        ],
        "apply" => &[(
            "See what would be applied, then apply one path:",
            "scopefs apply --dry-run /tmp/agent-overlay\nscopefs apply /tmp/agent-overlay src/lib.rs",
        )],
        "discard" => &[(
            "Drop the changes under tests/:",
            "scopefs discard /tmp/agent-overlay tests",
        )],
        "completions" => &[(
            "Install bash completions:",
            "scopefs completions bash > ~/.local/share/bash-completion/completions/scopefs",
        )],
        "man" => &[(
            "Install every page:",
            "scopefs man --out-dir /usr/local/share/man/man1",
        )],
        _ => &[],
    }
}

/// `scopefs-policy(5)`, from `docs/policy.md`.
fn policy_page() -> io::Result<Page> {
    let mut text = Vec::new();
    writeln!(
        text,
        ".TH scopefs-policy 5 \"\" \"scopefs {}\" \"File Formats\"",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        text,
        ".SH NAME\nscopefs\\-policy \\- the policy file of scopefs: what a view shows and what may change through it"
    )?;
    text.extend_from_slice(markdown_to_roff(POLICY_MD).as_bytes());
    writeln!(
        text,
        ".SH \"SEE ALSO\"\n\\fBscopefs\\fR(1), \\fBscopefs\\-check\\fR(1), \\fBscopefs\\-explain\\fR(1)"
    )?;
    Ok(Page {
        file: "scopefs-policy.5".into(),
        text,
    })
}

/// Escapes text for roff: backslashes, hyphens (so options read as typed) and a leading `.` or
/// `'`, which roff would take for a request.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Inline Markdown as roff: `code` and **strong** in bold, links as their text.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut strong = false;
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            code = !code;
            out.push_str(if code || strong { "\\fB" } else { "\\fR" });
            rest = after;
        } else if let Some(after) = rest.strip_prefix("**").filter(|_| !code) {
            strong = !strong;
            out.push_str(if strong { "\\fB" } else { "\\fR" });
            rest = after;
        } else if let Some((label, after)) = link(rest).filter(|_| !code) {
            out.push_str(&inline(label));
            rest = after;
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push_str(&escape(c.encode_utf8(&mut [0; 4])).replace("\\&", ""));
            }
            rest = chars.as_str();
        }
    }
    if code || strong {
        out.push_str("\\fR");
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// `[label](target)` at the start of `text`: the label, and what follows the link.
fn link(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('[')?;
    let (label, tail) = body.split_once("](")?;
    let (_, after) = tail.split_once(')')?;
    (!label.contains(']')).then_some((label, after))
}

/// The Markdown of the docs as roff: headings as sections, paragraphs, bullet lists, code
/// blocks as they are, and tables as one tagged paragraph per row (the first column as the tag,
/// the others named by their header). The page's own title is left out.
pub fn markdown_to_roff(markdown: &str) -> String {
    let mut out = String::new();
    let mut lines = markdown.lines().peekable();
    let mut header: Vec<String> = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            out.push_str(".PP\n.RS 4\n.nf\n");
            for code in lines.by_ref() {
                if code.starts_with("```") {
                    break;
                }
                out.push_str(&escape(code));
                out.push('\n');
            }
            out.push_str(".fi\n.RE\n");
        } else if let Some(title) = line.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", inline(title).replace('"', "")));
        } else if let Some(title) = line.strip_prefix("## ") {
            out.push_str(&format!(
                ".SH \"{}\"\n",
                inline(&title.to_uppercase()).replace('"', "")
            ));
        } else if line.starts_with("# ") {
            // The page's title: NAME says it.
        } else if line.starts_with('|') {
            let cells = table_cells(line);
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if header.is_empty() {
                header = cells;
                continue;
            }
            let mut cells = cells.into_iter();
            let tag = cells.next().unwrap_or_default();
            let body: Vec<String> = header
                .iter()
                .skip(1)
                .zip(cells)
                .map(|(name, cell)| format!("{}: {}", inline(name), inline(&cell)))
                .collect();
            out.push_str(&format!(".TP\n{}\n{}\n", inline(&tag), body.join("; ")));
            if !lines.peek().is_some_and(|l| l.starts_with('|')) {
                header.clear();
            }
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", inline(item)));
        } else if line.trim().is_empty() {
            out.push_str(".PP\n");
        } else {
            out.push_str(&inline(line.trim_start()));
            out.push('\n');
        }
    }
    out
}

/// The cells of a Markdown table row, `\|` kept as `|`.
fn table_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_roff() {
        let roff = markdown_to_roff(
            "# Title\n\n## Every key\n\nSee [policy](policy.md#x): `--allow` and **bold**.\n\n\
             | key | type |\n|---|---|\n| `[view] allow` | list \\| none |\n\n- one\n  more\n\n\
             ```toml\n.hidden = 1\n```\n",
        );
        assert!(!roff.contains("Title"), "{roff}");
        assert!(roff.contains(".SH \"EVERY KEY\""), "{roff}");
        assert!(
            roff.contains("See policy: \\fB\\-\\-allow\\fR and \\fBbold\\fR."),
            "{roff}"
        );
        assert!(
            roff.contains(".TP\n\\fB[view] allow\\fR\ntype: list | none\n"),
            "{roff}"
        );
        assert!(roff.contains(".IP \\(bu 2\none\nmore\n"), "{roff}");
        assert!(roff.contains(".nf\n\\&.hidden = 1\n.fi"), "{roff}");
    }
}
