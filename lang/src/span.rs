//! Byte spans into the source text, and the line/column lookup used to render them.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;

/// A half-open byte range `start..end` into the source a node was parsed from.
///
/// Spans never make two AST nodes unequal: `PartialEq` on `Span` is always `true`, so
/// `==` on any AST type compares structure only (this is what makes the round trip
/// `parse(print(ast)) == ast` expressible). Use [`Span::same`] to compare positions.
#[derive(Clone, Copy, Default)]
pub struct Span {
    /// First byte of the node.
    pub start: u32,
    /// One past the last byte of the node.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets (offsets past `u32::MAX` saturate; sources are capped below that).
    pub fn new(start: usize, end: usize) -> Span {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span { start: clamp(start), end: clamp(end) }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// The byte range, for slicing the source.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    /// Whether the span covers no bytes (end of input, for instance).
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// Exact positional equality (the `==` operator ignores spans on purpose).
    pub fn same(self, other: Span) -> bool {
        self.start == other.start && self.end == other.end
    }
}

impl PartialEq for Span {
    fn eq(&self, _other: &Span) -> bool {
        true
    }
}

impl Eq for Span {}

impl Hash for Span {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// One-based line and column of a byte offset; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// One-based line number.
    pub line: usize,
    /// One-based column, in characters.
    pub col: usize,
}

/// Line starts of a source text, for turning byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Index the line starts of `source`.
    pub fn new(source: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(source.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        LineIndex { source, starts }
    }

    /// Line and column of byte `offset` (clamped to the source, snapped to a char boundary).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = self.floor_boundary(offset);
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = self.source.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        LineCol { line: line + 1, col }
    }

    /// The text of one-based line `line`, without its line break.
    pub fn line_text(&self, line: usize) -> &'a str {
        let Some(&start) = self.starts.get(line.wrapping_sub(1)) else { return "" };
        let end = self.starts.get(line).map_or(self.source.len(), |&next| next - 1);
        let text = self.source.get(start..end).unwrap_or("");
        text.strip_suffix('\r').unwrap_or(text)
    }

    fn floor_boundary(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let idx = LineIndex::new("ab\ncdé\nx");
        assert_eq!(idx.line_col(0), LineCol { line: 1, col: 1 });
        assert_eq!(idx.line_col(3), LineCol { line: 2, col: 1 });
        assert_eq!(idx.line_col(7), LineCol { line: 2, col: 4 });
        assert_eq!(idx.line_text(2), "cdé");
        assert_eq!(idx.line_text(3), "x");
        assert_eq!(idx.line_text(9), "");
    }

    #[test]
    fn spans_compare_equal_regardless_of_position() {
        assert_eq!(Span::new(1, 2), Span::new(5, 9));
        assert!(!Span::new(1, 2).same(Span::new(5, 9)));
        assert_eq!(Span::new(1, 2).to(Span::new(5, 9)).range(), 1..9);
    }
}
