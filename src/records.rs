//! Reading text records: CSV rows under a header and JSON Lines, with 1-based line numbers.
//! Every reader of user input (labeling panels, events, predictions, completions, NAV series,
//! regimes, index files) goes through these pieces, so they all follow the same rules:
//!
//! - a CSV row whose field count differs from the header's is refused, naming the line (an
//!   unquoted `1,124.20` would otherwise shift every later field silently);
//! - a line that is not valid UTF-8 is a bad line like any other (named, counted), never an
//!   abort of the whole file;
//! - the format of a file comes from its name (`.csv`, `.jsonl`) or an explicit flag, never from
//!   its first byte;
//! - identifiers are text exactly as written, including JSON numbers (their raw token);
//! - no error quotes more than [`EXCERPT_BYTES`] bytes of input.
//!
//! Pure: callers read the bytes; these functions only split and check them.

use serde_json::value::RawValue;
use std::borrow::Cow;
use std::path::Path;

/// The most bytes of input an error message quotes.
pub const EXCERPT_BYTES: usize = 200;

/// At most [`EXCERPT_BYTES`] bytes of `bytes` as text (lossy UTF-8, control characters
/// escaped), with the total length when cut.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.len() > EXCERPT_BYTES;
    let head = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    let text: String = String::from_utf8_lossy(head)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if cut {
        format!("{text}… ({} bytes in all)", bytes.len())
    } else {
        text
    }
}

/// A file's format, from its name or a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// JSON Lines: one JSON object per line.
    Jsonl,
}

impl Format {
    /// `explicit` if given, else the file's extension (`.csv`, `.jsonl`/`.ndjson`, any case).
    /// `None`: the name does not say and no flag was given.
    pub fn of(path: &Path, explicit: Option<Format>) -> Option<Format> {
        explicit.or_else(|| {
            let ext = path.extension()?.to_str()?.to_ascii_lowercase();
            match ext.as_str() {
                "csv" => Some(Format::Csv),
                "jsonl" | "ndjson" => Some(Format::Jsonl),
                _ => None,
            }
        })
    }
}

/// Lines of a text file with 1-based line numbers starting at `first_line`, without line
/// terminators (`\n` or `\r\n`); skips a UTF-8 BOM and blank lines.
pub fn lines(bytes: &[u8], first_line: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut line_no = first_line;
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes)
        .chain(std::iter::once(bytes.len()))
        .map(move |end| {
            let line = &bytes[start.min(end)..end];
            start = end + 1;
            let n = line_no;
            line_no += 1;
            (n, line.strip_suffix(b"\r").unwrap_or(line))
        })
        .filter(|(_, line)| !line.iter().all(|b| b.is_ascii_whitespace()))
}

/// The non-blank lines of a JSON Lines file as text; a line that is not valid UTF-8 is an
/// `Err` with the reason (the caller counts and names it like any other bad line).
pub fn text_lines(bytes: &[u8]) -> impl Iterator<Item = (u64, Result<&str, String>)> {
    lines(bytes, 1).map(|(n, line)| {
        let text = std::str::from_utf8(line).map_err(|e| {
            format!(
                "not valid UTF-8 (byte {} of the line): {}",
                e.valid_up_to() + 1,
                excerpt(line)
            )
        });
        (n, text)
    })
}

/// A JSON value that must be an object: the JSON error for a line that is not one, naming the
/// field it is about (`field `car_estimate`: invalid number (column 103)`) and the column
/// within the line, never the parser's own "line 1" (the caller names the file's line).
pub fn json_object<'a, T: serde::Deserialize<'a>>(line: &'a str) -> Result<T, String> {
    if !line.trim_start().starts_with('{') {
        return Err(format!("not a JSON object: {}", excerpt(line.as_bytes())));
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = json_message(e.inner());
        if path.is_empty() || path == "." {
            message
        } else {
            format!("field `{path}`: {message}")
        }
    })?;
    // Anything after the object (a second value, stray text) makes the line malformed.
    de.end().map_err(|e| json_message(&e))?;
    Ok(value)
}

/// serde_json's message without its " at line L column C" suffix, with the column kept (a
/// JSON Lines record is one line, so the line is the caller's to name).
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) if e.column() > 0 => format!("{message} (column {})", e.column()),
        Some(message) => message.to_string(),
        None => text,
    }
}

/// An identifier as written: a JSON string's text, or a JSON number's raw token (`12345678901234567890123`
/// stays that, never a float). Anything else is refused.
pub fn json_id(raw: &RawValue) -> Result<String, String> {
    let token = raw.get().trim();
    match token.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(token).map_err(|e| format!("{e}")),
        Some(b'-' | b'0'..=b'9') => Ok(token.to_string()),
        _ => Err(format!(
            "`{}` is not a string or number",
            excerpt(token.as_bytes())
        )),
    }
}

/// The `event_id` of a JSON line, exactly as written (see [`json_id`]). Lines are read twice
/// (this, then the typed record) because serde's buffering of flattened or untagged fields
/// turns large integers into floats.
pub fn json_line_id(line: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        event_id: Option<&'a RawValue>,
    }
    let id: Id<'_> = json_object(line)?;
    json_id(id.event_id.ok_or("missing field `event_id`")?)
}

/// Why a file cannot be read as a table at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("{file}: empty file: expected a header line")]
    Empty { file: String },
    #[error("{file}:1: header: {message}")]
    Header { file: String, message: String },
    #[error("{file}: header lacks required column `{column}` (header: {header})")]
    MissingColumn {
        file: String,
        column: String,
        /// A bounded excerpt of the header line.
        header: String,
    },
}

/// The header line of a CSV file: lowercased, trimmed column names.
#[derive(Debug, Clone)]
pub struct Header {
    pub file: String,
    pub names: Vec<String>,
    raw: String,
}

impl Header {
    /// Position of a column, if present.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Positions of the `required` columns, or which one is missing.
    pub fn columns(&self, required: &[&str]) -> Result<Vec<usize>, TableError> {
        required
            .iter()
            .map(|col| {
                self.position(col).ok_or_else(|| TableError::MissingColumn {
                    file: self.file.clone(),
                    column: col.to_string(),
                    header: self.raw.clone(),
                })
            })
            .collect()
    }

    /// The number of fields every row must have.
    pub fn width(&self) -> usize {
        self.names.len()
    }
}

/// Splits a CSV file into its header and the bytes after it (the body starts on line 2).
pub fn split_header<'a>(file: &str, bytes: &'a [u8]) -> Result<(Header, &'a [u8]), TableError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let line = &bytes[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(TableError::Empty { file: file.into() });
    }
    let mut fields = Vec::new();
    split_fields(line, &mut fields).map_err(|message| TableError::Header {
        file: file.into(),
        message,
    })?;
    let header = Header {
        file: file.into(),
        names: fields.iter().map(|f| f.to_ascii_lowercase()).collect(),
        raw: excerpt(line),
    };
    Ok((header, &bytes[(end + 1).min(bytes.len())..]))
}

/// Splits one CSV line into fields (trimmed). Plain lines split on commas; a line with quotes
/// goes through the csv crate so quoted commas and doubled quotes are handled.
pub fn split_fields<'a>(line: &'a [u8], out: &mut Vec<Cow<'a, str>>) -> Result<(), String> {
    out.clear();
    if memchr::memchr(b'"', line).is_none() {
        let text = std::str::from_utf8(line).map_err(|e| {
            let field = memchr::memchr_iter(b',', &line[..e.valid_up_to()]).count() + 1;
            format!("field {field} is not valid UTF-8")
        })?;
        let mut start = 0;
        // Commas are ASCII, so these are character boundaries.
        for end in memchr::memchr_iter(b',', line).chain(std::iter::once(line.len())) {
            out.push(Cow::Borrowed(text[start..end].trim()));
            start = end + 1;
        }
        return Ok(());
    }
    // The csv crate reads an unclosed quote to the end of the input and returns what it saw as
    // a value; a record is one line (docs/data-formats.md), so that is a malformed row.
    if let Some(field) = unclosed_quote(line) {
        return Err(format!(
            "malformed CSV: field {field} opens a quote that the line never closes"
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => {
            for (i, f) in record.iter().enumerate() {
                let text = std::str::from_utf8(f)
                    .map_err(|_| format!("field {} is not valid UTF-8", i + 1))?;
                out.push(Cow::Owned(text.trim().to_string()));
            }
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(format!("malformed CSV: {e}")),
    }
}

/// The 1-based field whose quote the line leaves open, if any (RFC 4180: a field that starts
/// with `"` runs to the next `"` not doubled; a `"` elsewhere in a field is literal, as the csv
/// crate reads it).
fn unclosed_quote(line: &[u8]) -> Option<usize> {
    let (mut field, mut at_start, mut quoted) = (1, true, false);
    let mut bytes = line.iter().peekable();
    while let Some(&b) = bytes.next() {
        if quoted {
            if b == b'"' {
                if bytes.peek() == Some(&&b'"') {
                    bytes.next();
                } else {
                    quoted = false;
                }
            }
            continue;
        }
        match b {
            b',' => {
                field += 1;
                at_start = true;
                continue;
            }
            b'"' if at_start => quoted = true,
            _ => {}
        }
        at_start = false;
    }
    quoted.then_some(field)
}

/// Splits a row and checks it has exactly `width` fields (the header's).
pub fn split_row<'a>(
    line: &'a [u8],
    width: usize,
    out: &mut Vec<Cow<'a, str>>,
) -> Result<(), String> {
    split_fields(line, out)?;
    check_width(out.len(), width)
}

/// The one rule for a row's width: exactly the header's.
pub fn check_width(fields: usize, width: usize) -> Result<(), String> {
    if fields == width {
        return Ok(());
    }
    let hint = if fields > width {
        " (an unquoted comma inside a value, such as a thousands separator?)"
    } else {
        ""
    };
    Err(format!(
        "{fields} field(s) where the header has {width}{hint}"
    ))
}

/// A small CSV file read whole: header, then rows with their line numbers. Each row is either
/// its fields (exactly the header's count) or the reason it is bad.
pub struct Table<'a> {
    pub header: Header,
    body: &'a [u8],
}

impl<'a> Table<'a> {
    pub fn parse(file: &str, bytes: &'a [u8]) -> Result<Self, TableError> {
        let (header, body) = split_header(file, bytes)?;
        Ok(Table { header, body })
    }

    /// The data rows (line numbers from 2), blank lines skipped.
    pub fn rows(&self) -> impl Iterator<Item = (u64, Result<Vec<Cow<'a, str>>, String>)> + '_ {
        let width = self.header.width();
        lines(self.body, 2).map(move |(n, line)| {
            let mut fields = Vec::new();
            (n, split_row(line, width, &mut fields).map(|()| fields))
        })
    }
}

/// A required field of a row, non-empty.
pub fn field<'a>(fields: &'a [Cow<'_, str>], i: usize, column: &str) -> Result<&'a str, String> {
    fields
        .get(i)
        .map(|f| f.as_ref())
        .filter(|f| !f.is_empty())
        .ok_or_else(|| format!("missing {column}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded() {
        let long = vec![b'\r'; 1 << 20];
        let e = excerpt(&long);
        // 200 CRs escaped as `\r` (2 bytes each) plus the suffix.
        assert!(e.len() < 3 * EXCERPT_BYTES, "{}", e.len());
        assert!(e.ends_with("(1048576 bytes in all)"));
        assert_eq!(excerpt(b"a,b"), "a,b");
    }

    #[test]
    fn rows_wider_or_narrower_than_the_header_are_refused() {
        let t = Table::parse(
            "p.csv",
            b"date,close\n2020-01-02,1,124.20\n2020-01-03\n2020-01-06,\"1,124.20\"\n",
        )
        .unwrap();
        let rows: Vec<_> = t.rows().collect();
        assert_eq!(rows[0].0, 2);
        assert!(
            rows[0]
                .1
                .as_ref()
                .unwrap_err()
                .starts_with("3 field(s) where the header has 2")
        );
        assert!(rows[1].1.as_ref().unwrap_err().starts_with("1 field(s)"));
        assert_eq!(rows[2].1.as_ref().unwrap()[1], "1,124.20");
    }

    #[test]
    fn an_unclosed_quote_is_a_malformed_row() {
        let mut out = Vec::new();
        let e = split_fields(b"a,2023-10-16,\"long, leg", &mut out).unwrap_err();
        assert!(e.contains("field 3 opens a quote"), "{e}");
        // Closed quotes, doubled quotes and a literal quote inside a field are fine.
        split_fields(b"a,\"x \"\"y\"\", z\",b\"c", &mut out).unwrap();
        assert_eq!(out, ["a", "x \"y\", z", "b\"c"]);
        assert!(split_fields(b"\"a\"\"", &mut out).is_err());
    }

    #[test]
    fn ids_keep_their_raw_token() {
        assert_eq!(
            json_line_id(r#"{"event_id": 18446744073709551617, "x": 1}"#).unwrap(),
            "18446744073709551617"
        );
        assert_eq!(json_line_id(r#"{"event_id": "a\"b"}"#).unwrap(), "a\"b");
        assert!(json_line_id(r#"{"event_id": null}"#).is_err());
        assert!(
            json_line_id("[1]")
                .unwrap_err()
                .starts_with("not a JSON object")
        );
    }

    #[test]
    fn json_errors_name_the_field_not_the_parser_line() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            direction: String,
            car_estimate: f64,
        }
        // `NaN` is not JSON: the value of `car_estimate` starting at column 37 is refused.
        let e = json_object::<P>(r#"{"direction": "long", "car_estimate": NaN}"#).unwrap_err();
        assert!(e.starts_with("field `car_estimate`: "), "{e}");
        assert!(!e.contains("line 1"), "{e}");
        let e = json_object::<P>(r#"{"direction": 3, "car_estimate": 0.1}"#).unwrap_err();
        assert!(e.starts_with("field `direction`: invalid type"), "{e}");
        let e = json_object::<P>(r#"{"direction": "long"}"#).unwrap_err();
        assert!(e.contains("missing field `car_estimate`"), "{e}");
        assert!(json_object::<P>(r#"{"direction": "long", "car_estimate": 1} x"#).is_err());
    }

    #[test]
    fn format_comes_from_the_name_or_the_flag() {
        assert_eq!(
            Format::of(Path::new("a/e.JSONL"), None),
            Some(Format::Jsonl)
        );
        assert_eq!(Format::of(Path::new("e.csv"), None), Some(Format::Csv));
        assert_eq!(Format::of(Path::new("e.txt"), None), None);
        assert_eq!(
            Format::of(Path::new("e.csv"), Some(Format::Jsonl)),
            Some(Format::Jsonl)
        );
    }
}
