//! Policy errors: every problem found in a policy file or in the policy flags, each with where it
//! is (file:line:column, or the flag and its value) and a message that names the problem and the
//! fix.
//!
//! This module only formats; it never decides what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a policy error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A position in a policy file; `file` is `None` for text parsed without a file name.
    /// `line` and `column` are 1-based, the column counted in characters.
    File {
        file: Option<PathBuf>,
        line: usize,
        column: usize,
    },
    /// The policy file as a whole (it cannot be read, for instance).
    Whole(PathBuf),
    /// A command-line flag and the value it was given, e.g. `--hide "../x"`.
    Flag { flag: &'static str, value: String },
    /// A built-in preset (a defect of scopefs itself, never of the user's policy).
    Preset(&'static str),
}

impl Location {
    /// The position of byte `offset` of `text`, which was read from `file`.
    pub fn in_text(file: Option<&Path>, text: &str, offset: usize) -> Location {
        let (line, column) = line_column(text, offset);
        Location::File {
            file: file.map(Path::to_path_buf),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { file, line, column } => {
                match file {
                    Some(file) => write!(f, "{}", file.display())?,
                    None => f.write_str("<policy>")?,
                }
                write!(f, ":{line}:{column}")
            }
            Location::Whole(file) => write!(f, "{}", file.display()),
            Location::Flag { flag, value } => write!(f, "{flag} {value:?}"),
            Location::Preset(name) => write!(f, "preset {name}"),
        }
    }
}

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub location: Location,
    /// What is wrong and how to fix it, without the location.
    pub message: String,
}

impl PolicyError {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        PolicyError {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy, in the order they appear. Never empty when returned as an
/// error. Display prints one per line as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyErrors {
    errors: Vec<PolicyError>,
}

impl PolicyErrors {
    pub fn new() -> Self {
        PolicyErrors::default()
    }

    pub fn push(&mut self, error: PolicyError) {
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    pub fn extend(&mut self, other: PolicyErrors) {
        for error in other.errors {
            self.push(error);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        self.errors.iter()
    }

    /// The first error as one line, with a count of the others: for commands that print a single
    /// line (`mount`).
    pub fn first_line(&self) -> String {
        match self.errors.first() {
            None => "the policy is invalid".to_string(),
            Some(first) if self.errors.len() == 1 => first.to_string(),
            Some(first) => format!(
                "{first} (and {} more; run `scopefs check` to see all)",
                self.errors.len() - 1
            ),
        }
    }

    /// `Ok(value)` when nothing was found, the errors otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, PolicyErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<PolicyError> for PolicyErrors {
    fn from(error: PolicyError) -> Self {
        PolicyErrors {
            errors: vec![error],
        }
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// 1-based line and column (in characters) of byte `offset` in `text`. An offset past the end or
/// inside a character is clamped to the nearest character boundary before it.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_column(offset)
}

/// The starts of the lines of a text, to find the line and column of many offsets at the cost
/// of one pass over the text (a policy may hold tens of thousands of patterns).
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line after the first starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let starts = text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        LineIndex { text, starts }
    }

    /// The 1-based line and column (in characters) of byte `offset`, as [`line_column`].
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let text = self.text;
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = self.starts.partition_point(|start| *start <= offset);
        let line_start = match before.checked_sub(1) {
            Some(i) => self.starts.get(i).copied().unwrap_or(0),
            None => 0,
        };
        let column = text
            .get(line_start..offset)
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        (before + 1, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain way: count the newlines before `offset`.
    fn line_column_by_scanning(text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = text.get(..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        (line, column)
    }

    #[test]
    fn the_line_index_agrees_with_counting() {
        let text = "a = 1\n\n[view]\nhide = [\"é\", \"x\"]\nlast";
        let index = LineIndex::new(text);
        for offset in 0..text.len() + 3 {
            assert_eq!(
                index.line_column(offset),
                line_column_by_scanning(text, offset),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\n[view]\nhide = [\"é\", \"x\"]\n";
        for (offset, want) in [
            (0, (1, 1)),
            (4, (1, 5)),
            (6, (2, 1)),
            (13, (3, 1)),
            // after the two-byte é the column counts characters
            (text.find("\"x\"").unwrap_or(0), (3, 14)),
            (10_000, (4, 1)),
        ] {
            assert_eq!(line_column(text, offset), want, "offset {offset}");
        }
    }

    #[test]
    fn display_is_one_error_per_line() {
        let mut errors = PolicyErrors::new();
        errors.push(PolicyError::new(
            Location::File {
                file: Some("p.toml".into()),
                line: 2,
                column: 3,
            },
            "bad",
        ));
        errors.push(PolicyError::new(
            Location::Flag {
                flag: "--hide",
                value: "../x".into(),
            },
            "worse",
        ));
        assert_eq!(
            errors.to_string(),
            "p.toml:2:3: bad\n--hide \"../x\": worse"
        );
        assert_eq!(
            errors.first_line(),
            "p.toml:2:3: bad (and 1 more; run `scopefs check` to see all)"
        );
    }
}
