//! Rows of an import file, streamed: a chunk of the object at a time, and
//! never more than one row in memory, of at most [`MAX_ROW_BYTES`] (a
//! longer row is skipped to its end, and reported). CSV is parsed by
//! `csv-core`, which takes input in pieces and writes into buffers it is
//! given, so a row cannot grow past its buffer; JSON Lines are read a line
//! at a time under the same cap, and parsed by `serde_json` (depth-limited).

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest row: 64 KiB of cells (CSV), or of JSON (a line).
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// The most cells a CSV row may have.
pub const MAX_CELLS: usize = 256;
const CHUNK: usize = 64 * 1024;

/// One row of the file: its cells by the entity's columns, or why the row
/// as a whole could not be read.
#[derive(Debug)]
pub enum Row {
    Cells { number: u64, cells: Vec<Option<String>> },
    Unreadable { number: u64, reason: String },
}

/// Why the file as a whole cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Format(String),
    #[error("cannot read the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes from the object, a chunk at a time, counted.
struct Chunks<R> {
    reader: R,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    read: u64,
    first: bool,
}

impl<R: AsyncRead + Unpin> Chunks<R> {
    fn new(reader: R) -> Self {
        Chunks { reader, buffer: vec![0; CHUNK].into_boxed_slice(), start: 0, end: 0, eof: false, read: 0, first: true }
    }

    /// The unread bytes, reading more when there are none; empty at the end.
    async fn fill(&mut self) -> std::io::Result<&[u8]> {
        if self.start == self.end && !self.eof {
            let n = self.reader.read(&mut self.buffer).await?;
            self.read += n as u64;
            (self.start, self.end, self.eof) = (0, n, n == 0);
            if self.first && n > 0 {
                self.first = false;
                // A UTF-8 byte order mark (spreadsheets write one) is not data.
                // (A first read shorter than the mark is not worth handling.)
                if self.buffer[..n].starts_with(&[0xEF, 0xBB, 0xBF]) {
                    self.start = 3;
                }
            }
        }
        Ok(&self.buffer[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

/// The rows of a CSV file with a header row, mapped onto `columns`.
pub struct CsvRows<R> {
    chunks: Chunks<R>,
    core: csv_core::Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
    /// For each of the header's columns, its index in `columns`, if any.
    map: Vec<Option<usize>>,
    columns: usize,
    number: u64,
}

/// What one CSV record was.
enum Record {
    Fields(Vec<String>),
    Unreadable(String),
    End,
}

impl<R: AsyncRead + Unpin> CsvRows<R> {
    /// Reads the header; fails when it lacks one of `required`, or names a
    /// column twice. Returns the rows, and the header's columns that are
    /// not `columns` (ignored).
    pub async fn open(reader: R, columns: &[&str], required: &[&str]) -> Result<(Self, Vec<String>), FileError> {
        let mut rows = CsvRows {
            chunks: Chunks::new(reader),
            core: csv_core::Reader::new(),
            output: vec![0; MAX_ROW_BYTES],
            ends: vec![0; MAX_CELLS],
            map: Vec::new(),
            columns: columns.len(),
            number: 0,
        };
        let header = match rows.record().await? {
            Record::Fields(names) => names,
            Record::Unreadable(reason) => return Err(FileError::Format(format!("the header row {reason}"))),
            Record::End => return Err(FileError::Format("the file is empty: it needs a header row".into())),
        };
        let names: Vec<String> = header.iter().map(|name| name.trim().to_ascii_lowercase()).collect();
        for (n, name) in names.iter().enumerate() {
            if names[..n].contains(name) {
                return Err(FileError::Format(format!("the header names the column `{name}` twice")));
            }
        }
        let missing: Vec<&str> = required.iter().copied().filter(|c| !names.iter().any(|name| name == c)).collect();
        if !missing.is_empty() {
            return Err(FileError::Format(format!(
                "the header lacks the column{} {}; a file of this entity has the columns {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                columns.join(", ")
            )));
        }
        rows.map = names.iter().map(|name| columns.iter().position(|c| c == name)).collect();
        let ignored = names.iter().zip(&rows.map).filter(|(_, at)| at.is_none()).map(|(name, _)| name.clone());
        let ignored = ignored.collect();
        Ok((rows, ignored))
    }

    /// How many bytes of the file were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.chunks.read
    }

    /// The next row, or `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<Row>, FileError> {
        loop {
            let fields = match self.record().await? {
                Record::End => return Ok(None),
                Record::Unreadable(reason) => return Ok(Some(Row::Unreadable { number: self.number, reason })),
                Record::Fields(fields) => fields,
            };
            // A blank line is no row.
            if fields.len() == 1 && fields[0].trim().is_empty() {
                continue;
            }
            if fields.len() != self.map.len() {
                let reason = format!("has {} cells, and the header {}", fields.len(), self.map.len());
                return Ok(Some(Row::Unreadable { number: self.number, reason }));
            }
            let mut cells = vec![None; self.columns];
            for (value, at) in fields.into_iter().zip(&self.map) {
                if let Some(at) = at {
                    cells[*at] = Some(value);
                }
            }
            return Ok(Some(Row::Cells { number: self.number, cells }));
        }
    }

    /// One record of the file, counted: its fields, or why it cannot be
    /// read (too long, too many cells, not UTF-8), having been skipped.
    async fn record(&mut self) -> Result<Record, FileError> {
        let (mut out, mut ends) = (0usize, 0usize);
        let mut overflow: Option<&'static str> = None;
        loop {
            let input = self.chunks.fill().await?;
            let (result, read, wrote, ended) =
                self.core.read_record(input, &mut self.output[out..], &mut self.ends[ends..]);
            self.chunks.consume(read);
            out += wrote;
            ends += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    overflow = Some("is longer than 64 KiB");
                    out = 0;
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    overflow.get_or_insert("has more than 256 cells");
                    (out, ends) = (0, 0);
                }
                csv_core::ReadRecordResult::End => return Ok(Record::End),
                csv_core::ReadRecordResult::Record => {
                    self.number += 1;
                    if let Some(reason) = overflow {
                        return Ok(Record::Unreadable(reason.into()));
                    }
                    let mut fields = Vec::with_capacity(ends);
                    let mut from = 0;
                    for &end in &self.ends[..ends] {
                        let Ok(text) = std::str::from_utf8(&self.output[from..end]) else {
                            return Ok(Record::Unreadable("is not UTF-8 text".into()));
                        };
                        fields.push(text.to_owned());
                        from = end;
                    }
                    return Ok(Record::Fields(fields));
                }
            }
        }
    }
}

/// The rows of a JSON Lines file: one object per line, its keys the
/// columns (others are ignored); blank lines are skipped.
pub struct JsonRows<R> {
    chunks: Chunks<R>,
    line: Vec<u8>,
    columns: &'static [&'static str],
    number: u64,
}

impl<R: AsyncRead + Unpin> JsonRows<R> {
    pub fn new(reader: R, columns: &'static [&'static str]) -> Self {
        JsonRows { chunks: Chunks::new(reader), line: Vec::with_capacity(4096), columns, number: 0 }
    }

    pub fn bytes_read(&self) -> u64 {
        self.chunks.read
    }

    pub async fn next(&mut self) -> Result<Option<Row>, FileError> {
        loop {
            self.line.clear();
            let mut too_long = false;
            let mut seen_any = false;
            loop {
                let input = self.chunks.fill().await?;
                if input.is_empty() {
                    break;
                }
                seen_any = true;
                let (take, done) = match input.iter().position(|&b| b == b'\n') {
                    Some(at) => (at, true),
                    None => (input.len(), false),
                };
                if self.line.len() + take > MAX_ROW_BYTES {
                    too_long = true;
                } else {
                    self.line.extend_from_slice(&input[..take]);
                }
                self.chunks.consume(take + usize::from(done));
                if done {
                    break;
                }
            }
            if !seen_any {
                return Ok(None);
            }
            self.number += 1;
            let number = self.number;
            if too_long {
                return Ok(Some(Row::Unreadable { number, reason: "is longer than 64 KiB".into() }));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let object = match serde_json::from_slice::<serde_json::Map<String, Value>>(&self.line) {
                Ok(object) => object,
                Err(err) => {
                    let reason = format!("is not a JSON object: {err}");
                    return Ok(Some(Row::Unreadable { number, reason }));
                }
            };
            let mut cells = vec![None; self.columns.len()];
            for (key, value) in object {
                let Some(at) = self.columns.iter().position(|c| *c == key) else {
                    continue;
                };
                cells[at] = match value {
                    Value::Null => None,
                    Value::String(text) => Some(text),
                    Value::Number(number) => Some(number.to_string()),
                    Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                        let reason = format!("`{key}` must be text, a number or null");
                        return Ok(Some(Row::Unreadable { number, reason }));
                    }
                };
            }
            return Ok(Some(Row::Cells { number, cells }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[&str] = &["user", "type", "note"];

    async fn csv_rows(text: &[u8]) -> Result<Vec<Row>, FileError> {
        let (mut rows, _) = CsvRows::open(text, COLUMNS, &["user", "type"]).await?;
        let mut all = Vec::new();
        while let Some(row) = rows.next().await? {
            all.push(row);
        }
        Ok(all)
    }

    fn cells(row: &Row) -> Vec<Option<&str>> {
        match row {
            Row::Cells { cells, .. } => cells.iter().map(|c| c.as_deref()).collect(),
            Row::Unreadable { reason, .. } => panic!("unreadable: {reason}"),
        }
    }

    #[tokio::test]
    async fn csv_rows_map_by_header_name_whatever_the_order() {
        let rows =
            csv_rows(b"\xEF\xBB\xBFType,USER,extra\nflight,ana,x\n\n\"lodging\",\"b,o\"\"b\",y\n").await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(cells(&rows[0]), vec![Some("ana"), Some("flight"), None]);
        assert_eq!(cells(&rows[1]), vec![Some("b,o\"b"), Some("lodging"), None]);
        let Row::Cells { number, .. } = rows[1] else { panic!() };
        assert_eq!(number, 3, "the header is row 1");
    }

    #[tokio::test]
    async fn a_bad_csv_row_is_reported_and_the_next_one_read() {
        let mut text = b"user,type\nana,flight\n".to_vec();
        text.extend(vec![b'x'; MAX_ROW_BYTES + 10]);
        text.extend(b",flight\nbo,\xFF\ncy,flight,extra\ndi,bus\n");
        let rows = csv_rows(&text).await.unwrap();
        let reasons: Vec<String> = rows
            .iter()
            .map(|row| match row {
                Row::Cells { number, .. } => format!("{number} ok"),
                Row::Unreadable { number, reason } => format!("{number} {reason}"),
            })
            .collect();
        assert_eq!(
            reasons,
            ["2 ok", "3 is longer than 64 KiB", "4 is not UTF-8 text", "5 has 3 cells, and the header 2", "6 ok"]
        );
    }

    #[tokio::test]
    async fn a_header_without_a_required_column_fails_the_file() {
        let err = csv_rows(b"user,kind\nana,flight\n").await.unwrap_err();
        assert!(err.to_string().contains("lacks the column `type`"), "{err}");
        let err = csv_rows(b"user,type,USER\n").await.unwrap_err();
        assert!(err.to_string().contains("`user` twice"), "{err}");
        assert!(csv_rows(b"").await.unwrap_err().to_string().contains("empty"));
    }

    #[tokio::test]
    async fn json_lines_take_text_and_numbers_and_report_the_rest() {
        let text = b"{\"user\":\"ana\",\"type\":\"flight\",\"other\":[1]}\n\n{\"user\":7,\"type\":null}\n[1,2]\n{\"user\":true}\n{\"user\":\"x\"";
        let mut rows = JsonRows::new(&text[..], COLUMNS);
        let mut seen = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            seen.push(match row {
                Row::Cells { number, cells } => format!("{number} {cells:?}"),
                Row::Unreadable { number, reason } => format!("{number} {}", reason.split(':').next().unwrap_or("")),
            });
        }
        assert_eq!(
            seen,
            [
                "1 [Some(\"ana\"), Some(\"flight\"), None]",
                "3 [Some(\"7\"), None, None]",
                "4 is not a JSON object",
                "5 `user` must be text, a number or null",
                "6 is not a JSON object",
            ]
        );
    }
}
