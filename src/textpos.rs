//! Positions in configuration and definition files, for `file:line:column` errors.

use std::ops::Range;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    // Snap to a char boundary so slicing cannot fail on multi-byte characters.
    let offset = (0..=offset)
        .rev()
        .find(|o| text.is_char_boundary(*o))
        .unwrap_or(0);
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// Line starts of a text, for many [`line_col`] look-ups in one file (one per configured
/// meter) without rescanning the text from its start each time.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The same as [`line_col`]`(text, offset)`; `text` must be the indexed text.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let offset = (0..=offset)
            .rev()
            .find(|o| text.is_char_boundary(*o))
            .unwrap_or(0);
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = text.get(start..offset).unwrap_or_default().chars().count() + 1;
        (line, column)
    }
}

/// A problem at a position in a configuration or definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl Located {
    /// A problem of a whole section (line 0: no position to show).
    pub fn unplaced(file: &str, message: String) -> Located {
        Located {
            file: file.to_string(),
            line: 0,
            column: 0,
            message,
        }
    }
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// The problem `message` at byte `span.start` of `text` (the file `file`).
pub fn locate(file: &str, text: &str, span: Range<usize>, message: impl Into<String>) -> Located {
    let (line, column) = line_col(text, span.start);
    Located {
        file: file.to_string(),
        line,
        column,
        message: message.into(),
    }
}

/// [`locate`] through a line index (one look-up per meter stays cheap with 10,000 meters).
pub fn locate_in(
    index: &LineIndex,
    file: &str,
    text: &str,
    span: Range<usize>,
    message: impl Into<String>,
) -> Located {
    let (line, column) = index.line_col(text, span.start);
    Located {
        file: file.to_string(),
        line,
        column,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_agrees_with_line_col() {
        let text = "a = 1\n\nb = \"é\"\nc = 3";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.line_col(text, offset),
                line_col(text, offset),
                "{offset}"
            );
        }
    }
}
