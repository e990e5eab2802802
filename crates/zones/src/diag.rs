//! Diagnostics: `file:line:col: what is wrong — how to fix it`. Every rule reports through this
//! one type so that all errors of a file come out together, in file order.

use std::fmt;
use std::ops::Range;

/// A 1-based line and column (in characters) inside the zones file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1, in characters (not bytes).
    pub col: usize,
}

impl Pos {
    /// The position of byte `offset` in `text`. Offsets past the end or inside a character
    /// clamp to the nearest earlier character boundary, so a bad span cannot panic.
    pub fn of_offset(text: &str, offset: usize) -> Pos {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos { line, col: before[line_start..].chars().count() + 1 }
    }

    /// The start of a byte span.
    pub fn of_span(text: &str, span: &Range<usize>) -> Pos {
        Pos::of_offset(text, span.start)
    }
}

/// One problem found in a zones file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file name as the user gave it.
    pub file: String,
    /// Where the offending value starts.
    pub pos: Pos,
    /// What is wrong.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {} — {}", self.file, self.pos.line, self.pos.col, self.what, self.fix)
    }
}

/// Collects diagnostics while the rules run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) file: String,
    pub(crate) items: Vec<Diagnostic>,
}

impl Report {
    pub(crate) fn new(file: &str) -> Report {
        Report { file: file.to_string(), items: Vec::new() }
    }

    pub(crate) fn error(&mut self, pos: Pos, what: impl Into<String>, fix: impl Into<String>) {
        self.items.push(Diagnostic { file: self.file.clone(), pos, what: what.into(), fix: fix.into() });
    }

    /// The diagnostics in file order (stable for equal positions).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| d.pos);
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let t = "a\nbé c\n";
        assert_eq!(Pos::of_offset(t, 0), Pos { line: 1, col: 1 });
        assert_eq!(Pos::of_offset(t, 2), Pos { line: 2, col: 1 });
        assert_eq!(Pos::of_offset(t, 5), Pos { line: 2, col: 3 });
        // Inside 'é' (bytes 3..5) and past the end: clamped, no panic.
        assert_eq!(Pos::of_offset(t, 4), Pos { line: 2, col: 2 });
        assert_eq!(Pos::of_offset(t, 999), Pos { line: 3, col: 1 });
    }
}
