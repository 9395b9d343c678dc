//! Writing results: the chosen output format, the stdout handle, and plain
//! aligned tables.
//!
//! It owns layout (column widths, the bold header, sanitising cells) and
//! the rule that colour is used only when the caller allows it. It must not
//! know about gRPC messages; `present` turns those into cells and JSON.

use std::io::{self, Write};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Lines and tables for people.
    Table,
    /// The API's canonical JSON of each answer, for scripts (`watch`: one
    /// object per line).
    Json,
}

/// Spaces between two table columns.
const COLUMN_GAP: &str = "   ";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Where and how a command prints its result.
pub(crate) struct Printer<'a> {
    out: &'a mut (dyn Write + Send),
    /// Where notes for the person go (stderr), if anywhere.
    notes: Option<&'a mut (dyn Write + Send)>,
    format: OutputFormat,
    colour: bool,
}

impl<'a> Printer<'a> {
    pub(crate) fn new(out: &'a mut (dyn Write + Send), format: OutputFormat, colour: bool) -> Self {
        Printer {
            out,
            notes: None,
            format,
            colour,
        }
    }

    /// Sends notes (progress, retries) to `notes`, apart from the result.
    pub(crate) fn with_notes(mut self, notes: &'a mut (dyn Write + Send)) -> Self {
        self.notes = Some(notes);
        self
    }

    /// One line for the person watching, never mixed into the result.
    pub(crate) fn note(&mut self, text: &str) -> io::Result<()> {
        match &mut self.notes {
            Some(notes) => {
                writeln!(notes, "{text}")?;
                notes.flush()
            }
            None => Ok(()),
        }
    }

    /// The format the user asked for.
    pub(crate) fn format(&self) -> OutputFormat {
        self.format
    }

    /// One line of text for people.
    pub(crate) fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    /// One pretty-printed JSON document.
    pub(crate) fn json(&mut self, value: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *self.out, value)?;
        writeln!(self.out)?;
        self.out.flush()
    }

    /// One compact JSON object on one line (JSON Lines), for streams.
    pub(crate) fn json_line(&mut self, value: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer(&mut *self.out, value)?;
        writeln!(self.out)?;
        self.out.flush()
    }

    /// A table, header in bold when colour is allowed.
    pub(crate) fn table(&mut self, table: &Table) -> io::Result<()> {
        self.out.write_all(table.render(self.colour).as_bytes())?;
        self.out.flush()
    }
}

/// Rows of text cells printed under a header, each column as wide as its
/// widest cell.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|title| (*title).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row. Control characters become spaces so a cell cannot break
    /// the layout or drive the terminal; an empty cell prints as `-`.
    /// Missing trailing cells are empty, extra ones are dropped.
    pub(crate) fn push(&mut self, cells: Vec<String>) {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.header.len())
            .map(|cell| clean_cell(&cell))
            .collect();
        row.resize(self.header.len(), "-".to_owned());
        self.rows.push(row);
    }

    /// The table as text, one line per row, ending in a newline.
    pub(crate) fn render(&self, colour: bool) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|title| width(title)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                widths[column] = widths[column].max(width(cell));
            }
        }
        let mut text = String::new();
        let header = render_row(&self.header, &widths);
        if colour {
            text.push_str(BOLD);
            text.push_str(&header);
            text.push_str(RESET);
        } else {
            text.push_str(&header);
        }
        text.push('\n');
        for row in &self.rows {
            text.push_str(&render_row(row, &widths));
            text.push('\n');
        }
        text
    }
}

fn render_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (column, cell) in cells.iter().enumerate() {
        if column > 0 {
            line.push_str(COLUMN_GAP);
        }
        line.push_str(cell);
        let is_last = column + 1 == cells.len();
        if !is_last {
            line.extend(std::iter::repeat_n(' ', widths[column] - width(cell)));
        }
    }
    line
}

/// Display width of a cell. Counting chars (not bytes) keeps names like
/// "Jörg" aligned; wide CJK glyphs would need a width table, which is not
/// worth a dependency here.
fn width(text: &str) -> usize {
    text.chars().count()
}

fn clean_cell(cell: &str) -> String {
    let cleaned: String = cell
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        "-".to_owned()
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(&["ENV", "ARTIFACT", "BY"]);
        table.push(vec![
            "dev".into(),
            "master-1a2b3c-4d5e6f".into(),
            "Jane Doe".into(),
        ]);
        table.push(vec!["production".into(), "".into(), "Jörg".into()]);
        table
    }

    #[test]
    fn columns_are_aligned() {
        let text = sample().render(false);
        assert_eq!(
            text,
            "\
ENV          ARTIFACT               BY
dev          master-1a2b3c-4d5e6f   Jane Doe
production   -                      Jörg
"
        );
    }

    #[test]
    fn header_is_bold_only_with_colour() {
        let plain = sample().render(false);
        assert!(!plain.contains('\x1b'));
        let coloured = sample().render(true);
        let first = coloured.lines().next().expect("header");
        assert!(
            first.starts_with(BOLD) && first.ends_with(RESET),
            "{first:?}"
        );
        // Only the header is styled: the rows are the same as without colour.
        assert_eq!(
            coloured.lines().skip(1).collect::<Vec<_>>(),
            plain.lines().skip(1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn cells_are_sanitised_and_rows_padded() {
        let mut table = Table::new(&["A", "B", "C"]);
        table.push(vec!["line one\nline two\x1b[31m".into()]);
        let text = table.render(false);
        assert!(!text.contains('\x1b'));
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(text.lines().nth(1), Some("line one line two [31m   -   -"));
    }

    #[test]
    fn header_only_table() {
        let table = Table::new(&["ENV", "ARTIFACT"]);
        assert_eq!(table.render(false), "ENV   ARTIFACT\n");
    }

    #[test]
    fn printer_writes_json_and_lines() {
        let mut buffer = Vec::new();
        let mut printer = Printer::new(&mut buffer, OutputFormat::Json, false);
        printer.json(&serde_json::json!({"a": 1})).expect("writes");
        printer.line("done").expect("writes");
        printer
            .json_line(&serde_json::json!({"b": [1, 2]}))
            .expect("writes");
        assert_eq!(
            String::from_utf8(buffer).expect("utf-8"),
            "{\n  \"a\": 1\n}\ndone\n{\"b\":[1,2]}\n"
        );
    }
}
