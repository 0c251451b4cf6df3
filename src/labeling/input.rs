//! Parsing the labeling inputs (docs/data-formats.md) from bytes into dense panels. Pure: the
//! caller reads the files. Bad rows are reported with file and line; in strict mode the first
//! one is an error, otherwise it is skipped and counted.
//!
//! The numeric files (prices, indices, factors) are large, so they are split at line boundaries
//! and parsed on all cores; rows are then merged in file order so duplicate and order checks see
//! the file exactly as written.
//!
//! Row order within a file does not matter: each row is placed in the panel by its date (real
//! exports often come newest first). A file whose rows are not in increasing date order is
//! accepted and said so in [`Dataset::notes`]; a repeated (symbol, date) is still a bad row.

use crate::records::{
    Format, Table, TableError, excerpt, field, json_line_id, json_object, lines, split_fields,
    split_header, split_row, text_lines,
};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// A skipped input row: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0} (strict mode stops at the first bad row)")]
    BadRow(BadRow),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// Skipped rows, counted by input role, with the first few kept for the report.
#[derive(Debug, Clone, Default)]
pub struct BadRows {
    pub counts: BTreeMap<String, u64>,
    pub examples: Vec<BadRow>,
}

/// Bad rows kept verbatim per report; the rest are only counted.
const MAX_EXAMPLES: usize = 50;

impl BadRows {
    fn push(&mut self, role: &str, row: BadRow, strict: bool) -> Result<(), InputError> {
        if strict {
            return Err(InputError::BadRow(row));
        }
        *self.counts.entry(role.to_string()).or_default() += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(row);
        }
        Ok(())
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The trading calendar: the dates of the index file, ascending.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub dates: Vec<NaiveDate>,
    first_day: i32,
    /// Calendar position of each day number from `first_day`, or −1 for non-trading days.
    position: Vec<i32>,
}

impl Calendar {
    pub fn new(mut dates: Vec<NaiveDate>) -> Self {
        dates.sort_unstable();
        dates.dedup();
        let first_day = dates.first().map_or(0, |d| d.num_days_from_ce());
        let span = dates
            .last()
            .map_or(0, |d| (d.num_days_from_ce() - first_day + 1) as usize);
        let mut position = vec![-1; span];
        for (i, d) in dates.iter().enumerate() {
            position[(d.num_days_from_ce() - first_day) as usize] = i as i32;
        }
        Self {
            dates,
            first_day,
            position,
        }
    }

    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Position of a trading day.
    pub fn index(&self, date: NaiveDate) -> Option<usize> {
        let offset = date.num_days_from_ce() - self.first_day;
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.position.get(o))
            .and_then(|&p| usize::try_from(p).ok())
    }

    /// Position of the first trading day on or after `date`.
    pub fn first_on_or_after(&self, date: NaiveDate) -> Option<usize> {
        let i = self.dates.partition_point(|d| *d < date);
        (i < self.dates.len()).then_some(i)
    }
}

/// Symbols with their market index and industry.
#[derive(Debug, Clone, Default)]
pub struct Universe {
    pub symbols: Vec<String>,
    pub lookup: HashMap<String, u32>,
    /// Position in `indices` of each symbol's market index.
    pub index_of: Vec<u32>,
    /// Position in `industries` of each symbol's industry.
    pub industry_of: Vec<u32>,
    pub indices: Vec<String>,
    pub industries: Vec<String>,
}

/// Symbol-major panels over the calendar; NaN marks a missing row.
#[derive(Debug, Clone)]
pub struct Prices {
    pub days: usize,
    pub open: Vec<f64>,
    pub close: Vec<f64>,
}

impl Prices {
    pub fn close_of(&self, symbol: usize) -> &[f64] {
        &self.close[symbol * self.days..(symbol + 1) * self.days]
    }
    pub fn open_of(&self, symbol: usize) -> &[f64] {
        &self.open[symbol * self.days..(symbol + 1) * self.days]
    }
    /// The price file has a row for `symbol` on calendar day `day` (else it was halted or not
    /// listed that day); out of range: no row.
    pub fn has_row(&self, symbol: usize, day: usize) -> bool {
        let at = |panel: &[f64]| {
            (day < self.days)
                .then(|| panel.get(symbol * self.days + day))
                .flatten()
                .is_some_and(|v| !v.is_nan())
        };
        at(&self.close) || at(&self.open)
    }
}

/// Style-factor exposures. A symbol's exposures on a day are those of its latest row on or
/// before that day (risk models publish exposures periodically); before its first row it has
/// none. Stored as each symbol's rows, so memory follows the file, not symbols × days.
#[derive(Debug, Clone)]
pub struct Exposures {
    pub factors: Vec<String>,
    /// Per symbol: the calendar positions of its rows, ascending.
    row_days: Vec<Vec<u32>>,
    /// Per symbol: its rows' values, `factors.len()` per row.
    row_values: Vec<Vec<f64>>,
}

impl Exposures {
    /// The exposures of `symbol` in force on `day`, if any.
    pub fn at(&self, day: usize, symbol: usize) -> Option<&[f64]> {
        let days = &self.row_days[symbol];
        let rows = days.partition_point(|d| *d as usize <= day);
        let k = self.factors.len();
        (rows > 0).then(|| &self.row_values[symbol][(rows - 1) * k..rows * k])
    }

    /// A cursor that walks the days in order and yields every symbol's exposures in force, in
    /// O(symbols) per day.
    pub fn cursor(&self) -> ExposureCursor<'_> {
        ExposureCursor {
            exposures: self,
            next_row: vec![0; self.row_days.len()],
        }
    }
}

/// See [`Exposures::cursor`].
pub struct ExposureCursor<'a> {
    exposures: &'a Exposures,
    /// Per symbol: the number of its rows on or before the current day.
    next_row: Vec<usize>,
}

impl ExposureCursor<'_> {
    /// Advances to `day` (days must not decrease).
    pub fn advance(&mut self, day: usize) {
        for (s, next) in self.next_row.iter_mut().enumerate() {
            let days = &self.exposures.row_days[s];
            while *next < days.len() && days[*next] as usize <= day {
                *next += 1;
            }
        }
    }

    /// Exposures of `symbol` on the current day.
    pub fn get(&self, symbol: usize) -> Option<&[f64]> {
        let rows = self.next_row[symbol];
        let k = self.exposures.factors.len();
        (rows > 0).then(|| &self.exposures.row_values[symbol][(rows - 1) * k..rows * k])
    }
}

/// One news event as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub timestamp: DateTime<FixedOffset>,
    pub symbol: String,
    pub event_type: String,
    pub title: String,
}

/// Everything labeling reads, parsed.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub calendar: Calendar,
    pub universe: Universe,
    pub prices: Prices,
    /// Closes of each index of `universe.indices` over the calendar (NaN when missing).
    pub index_close: Vec<Vec<f64>>,
    pub exposures: Option<Exposures>,
    pub events: Vec<Event>,
    pub bad_rows: BadRows,
    /// What was done to the input that a user should know of (e.g. rows placed by date
    /// because the file was not in increasing date order).
    pub notes: Vec<String>,
}

/// The raw bytes of each input file and the name to report it by.
pub struct Sources<'a> {
    pub prices: (&'a str, &'a [u8]),
    pub indices: (&'a str, &'a [u8]),
    pub universe: (&'a str, &'a [u8]),
    pub factors: Option<(&'a str, &'a [u8])>,
    pub events: (&'a str, &'a [u8]),
    /// The events' format; `None`: from the events file's name (`.csv`, `.jsonl`).
    pub events_format: Option<Format>,
}

impl Dataset {
    /// Parses all inputs. `strict`: the first bad row is an error.
    pub fn parse(src: &Sources<'_>, strict: bool) -> Result<Dataset, InputError> {
        let mut bad = BadRows::default();
        let mut notes = Vec::new();
        let mut universe = parse_universe(src.universe, strict, &mut bad)?;
        let (calendar, index_close, unordered) =
            parse_indices(src.indices, &mut universe, strict, &mut bad)?;
        notes.extend(unordered_note(src.indices.0, unordered));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (prices, exposures) = std::thread::scope(|scope| {
            let factors = src.factors.map(|f| {
                let (universe, calendar) = (&universe, &calendar);
                scope.spawn(move || parse_factors(f, universe, calendar, strict, threads))
            });
            let prices = parse_prices(src.prices, &universe, &calendar, strict, threads);
            let exposures = factors.map(|h| h.join().expect("factor parser does not panic"));
            (prices, exposures)
        });
        let (prices, price_bad, unordered) = prices?;
        merge_bad(&mut bad, price_bad);
        notes.extend(unordered_note(src.prices.0, unordered));
        let exposures = match exposures {
            Some(result) => {
                let (exposures, factor_bad, unordered) = result?;
                merge_bad(&mut bad, factor_bad);
                notes.extend(unordered_note(src.factors.map_or("", |f| f.0), unordered));
                Some(exposures)
            }
            None => None,
        };
        let format =
            Format::of(std::path::Path::new(src.events.0), src.events_format).ok_or_else(|| {
                InputError::Invalid {
                    file: src.events.0.into(),
                    message:
                        "cannot tell CSV from JSON Lines: name the file .csv or .jsonl, or give \
                          the format explicitly"
                            .into(),
                }
            })?;
        let events = parse_events(src.events, format, strict, &mut bad)?;
        Ok(Dataset {
            calendar,
            universe,
            prices,
            index_close,
            exposures,
            events,
            bad_rows: bad,
            notes,
        })
    }
}

/// The note for a file with `unordered` rows dated before an earlier row of the same series.
fn unordered_note(file: &str, unordered: u64) -> Option<String> {
    (unordered > 0).then(|| {
        format!(
            "{file}: {unordered} row(s) come after a later date of the same series (the file is \
             not in increasing date order, e.g. newest first); every row was placed by its date"
        )
    })
}

fn merge_bad(into: &mut BadRows, from: BadRows) {
    for (role, n) in from.counts {
        *into.counts.entry(role).or_default() += n;
    }
    for row in from.examples {
        if into.examples.len() < MAX_EXAMPLES {
            into.examples.push(row);
        }
    }
}

/// A price panel on its own (evaluation reads prices without the labeling inputs): the calendar
/// is the set of dates in the file and the universe the symbols in it.
pub fn parse_price_panel(
    (file, bytes): (&str, &[u8]),
    strict: bool,
) -> Result<(Calendar, Universe, Prices, BadRows), InputError> {
    let (header, body) = split_header(file, bytes)?;
    let cols = header.columns(&["date", "symbol"])?;
    let mut dates = std::collections::BTreeSet::new();
    let mut universe = Universe::default();
    let mut fields = Vec::new();
    for (_, text) in lines(body, 2) {
        if split_fields(text, &mut fields).is_err() {
            continue; // reported by the full parse below
        }
        if let Some(Ok(date)) = fields.get(cols[0]).map(|d| parse_date(d)) {
            dates.insert(date);
        }
        if let Some(symbol) = fields.get(cols[1]).filter(|s| !s.is_empty())
            && !universe.lookup.contains_key(symbol.as_ref())
        {
            universe
                .lookup
                .insert(symbol.to_string(), universe.symbols.len() as u32);
            universe.symbols.push(symbol.to_string());
            universe.index_of.push(0);
            universe.industry_of.push(0);
        }
    }
    if dates.is_empty() {
        return Err(InputError::Invalid {
            file: file.into(),
            message: "no dated rows".into(),
        });
    }
    let calendar = Calendar::new(dates.into_iter().collect());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (prices, bad, _unordered) =
        parse_prices((file, bytes), &universe, &calendar, strict, threads)?;
    Ok((calendar, universe, prices, bad))
}

// ---------- line and field splitting ----------

/// Splits the body after the header into up to `parts` chunks at line boundaries; each with the
/// line number of its first line.
fn chunks(body: &[u8], first_line: u64, parts: usize) -> Vec<(u64, &[u8])> {
    let parts = parts.max(1);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    let mut line = first_line;
    for p in 1..=parts {
        let mut end = if p == parts {
            body.len()
        } else {
            (body.len() * p / parts).max(start)
        };
        if end < body.len() {
            end = memchr::memchr(b'\n', &body[end..]).map_or(body.len(), |i| end + i + 1);
        }
        if end > start {
            out.push((line, &body[start..end]));
            line += memchr::memchr_iter(b'\n', &body[start..end]).count() as u64;
        }
        start = end;
    }
    out
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
        })
    };
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) {
            if let Some(date) = NaiveDate::from_ymd_opt(y as i32, m, d) {
                return Ok(date);
            }
        }
    }
    Err(format!(
        "`{}` is not a date (YYYY-MM-DD)",
        excerpt(s.as_bytes())
    ))
}

/// Exact powers of ten as doubles (10^22 is the largest exactly representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Plain decimals of at most 15 digits (`-12.3456`), by Clinger's fast path: the digits form
/// an exact integer m < 2^53 and 10^k is exact, so m / 10^k is the correctly rounded value —
/// the same double `str::parse` returns. Anything else is left to `str::parse`.
fn fast_decimal(field: &str) -> Option<f64> {
    let (negative, digits) = match field.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        bytes => (false, bytes),
    };
    let (mut mantissa, mut count, mut fraction, mut point) = (0u64, 0u32, 0usize, false);
    for &c in digits {
        match c {
            b'.' if !point => point = true,
            // More than 15 digits is not the fast path (and would overflow the mantissa).
            b'0'..=b'9' if count == 15 => return None,
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + (c - b'0') as u64;
                count += 1;
                fraction += point as usize;
            }
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction];
    Some(if negative { -value } else { value })
}

fn parse_number(field: &str, column: &str) -> Result<f64, String> {
    if let Some(v) = fast_decimal(field) {
        return Ok(v);
    }
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "{column} `{}` is not a finite number",
            excerpt(field.as_bytes())
        )),
    }
}

// ---------- universe ----------

fn parse_universe(
    (file, bytes): (&str, &[u8]),
    strict: bool,
    bad: &mut BadRows,
) -> Result<Universe, InputError> {
    let (header, body) = split_header(file, bytes)?;
    let cols = header.columns(&["symbol", "index", "industry"])?;
    let mut u = Universe::default();
    let mut index_ids: HashMap<String, u32> = HashMap::default();
    let mut industry_ids: HashMap<String, u32> = HashMap::default();
    let mut fields = Vec::new();
    for (line, text) in lines(body, 2) {
        let row = split_row(text, header.width(), &mut fields).and_then(|()| {
            Ok((
                field(&fields, cols[0], "symbol")?.to_string(),
                field(&fields, cols[1], "index")?.to_string(),
                field(&fields, cols[2], "industry")?.to_string(),
            ))
        });
        let (symbol, index, industry) = match row {
            Ok(r) => r,
            Err(reason) => {
                bad.push(
                    "universe",
                    BadRow {
                        file: file.into(),
                        line,
                        reason,
                    },
                    strict,
                )?;
                continue;
            }
        };
        if u.lookup.contains_key(&symbol) {
            let reason = format!("duplicate symbol `{}`", excerpt(symbol.as_bytes()));
            bad.push(
                "universe",
                BadRow {
                    file: file.into(),
                    line,
                    reason,
                },
                strict,
            )?;
            continue;
        }
        let next = index_ids.len() as u32;
        let index_id = *index_ids.entry(index.clone()).or_insert_with(|| {
            u.indices.push(index);
            next
        });
        let next = industry_ids.len() as u32;
        let industry_id = *industry_ids.entry(industry.clone()).or_insert_with(|| {
            u.industries.push(industry);
            next
        });
        u.lookup.insert(symbol.clone(), u.symbols.len() as u32);
        u.symbols.push(symbol);
        u.index_of.push(index_id);
        u.industry_of.push(industry_id);
    }
    if u.symbols.is_empty() {
        return Err(InputError::Invalid {
            file: file.into(),
            message: "no symbols".into(),
        });
    }
    Ok(u)
}

// ---------- indices ----------

fn parse_indices(
    (file, bytes): (&str, &[u8]),
    universe: &mut Universe,
    strict: bool,
    bad: &mut BadRows,
) -> Result<(Calendar, Vec<Vec<f64>>, u64), InputError> {
    let (header, body) = split_header(file, bytes)?;
    let cols = header.columns(&["date", "index", "close"])?;
    let mut seen: HashMap<(usize, NaiveDate), u64> = HashMap::default();
    let mut unordered = 0u64;
    let index_ids: HashMap<&str, usize> = universe
        .indices
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut rows: Vec<(NaiveDate, usize, f64)> = Vec::new();
    let mut last_date: Vec<Option<(NaiveDate, u64)>> = vec![None; universe.indices.len()];
    let mut fields = Vec::new();
    for (line, text) in lines(body, 2) {
        let row = split_row(text, header.width(), &mut fields).and_then(|()| {
            let date = parse_date(field(&fields, cols[0], "date")?)?;
            let index = field(&fields, cols[1], "index")?;
            let close = parse_number(field(&fields, cols[2], "close")?, "close")?;
            if close <= 0.0 {
                return Err(format!("close {close} is not positive"));
            }
            Ok((date, index, close))
        });
        let reason = match row {
            Ok((date, index, close)) => match index_ids.get(index) {
                // An index no symbol uses is allowed and ignored.
                None => continue,
                Some(&i) => match seen.get(&(i, date)) {
                    Some(l) => {
                        format!(
                            "duplicate row for index `{}` on {date} (first on line {l})",
                            excerpt(index.as_bytes())
                        )
                    }
                    None => {
                        seen.insert((i, date), line);
                        if last_date[i].is_some_and(|(d, _)| d > date) {
                            unordered += 1;
                        }
                        if last_date[i].is_none_or(|(d, _)| d < date) {
                            last_date[i] = Some((date, line));
                        }
                        rows.push((date, i, close));
                        continue;
                    }
                },
            },
            Err(reason) => reason,
        };
        bad.push(
            "indices",
            BadRow {
                file: file.into(),
                line,
                reason,
            },
            strict,
        )?;
    }
    let calendar = Calendar::new(rows.iter().map(|r| r.0).collect());
    if calendar.is_empty() {
        return Err(InputError::Invalid {
            file: file.into(),
            message: "no index closes for the universe's indices: the trading calendar is empty"
                .into(),
        });
    }
    let mut closes = vec![vec![f64::NAN; calendar.len()]; universe.indices.len()];
    for (date, i, close) in rows {
        closes[i][calendar
            .index(date)
            .expect("calendar built from these dates")] = close;
    }
    for (i, name) in universe.indices.iter().enumerate() {
        if last_date[i].is_none() {
            return Err(InputError::Invalid {
                file: file.into(),
                message: format!("index `{name}` is named in the universe but has no closes"),
            });
        }
    }
    Ok((calendar, closes, unordered))
}

// ---------- prices ----------

struct PriceRow {
    line: u64,
    symbol: u32,
    day: u32,
    open: f64,
    close: f64,
}

type ChunkResult<T> = (Vec<T>, Vec<BadRow>);

fn parse_prices(
    (file, bytes): (&str, &[u8]),
    universe: &Universe,
    calendar: &Calendar,
    strict: bool,
    threads: usize,
) -> Result<(Prices, BadRows, u64), InputError> {
    let (header, body) = split_header(file, bytes)?;
    let cols = header.columns(&["date", "symbol", "open", "close"])?;
    let parse_chunk = |(first_line, chunk): (u64, &[u8])| -> ChunkResult<PriceRow> {
        let mut rows = Vec::with_capacity(chunk.len() / 32);
        let mut bad = Vec::new();
        let mut fields = Vec::new();
        for (line, text) in lines(chunk, first_line) {
            let row = split_row(text, header.width(), &mut fields).and_then(|()| {
                let date = parse_date(field(&fields, cols[0], "date")?)?;
                let symbol = field(&fields, cols[1], "symbol")?;
                let open = parse_number(field(&fields, cols[2], "open")?, "open")?;
                let close = parse_number(field(&fields, cols[3], "close")?, "close")?;
                if open <= 0.0 || close <= 0.0 {
                    return Err(format!(
                        "prices must be positive (open {open}, close {close})"
                    ));
                }
                let symbol = *universe.lookup.get(symbol).ok_or_else(|| {
                    format!(
                        "symbol `{}` is not in the universe",
                        excerpt(symbol.as_bytes())
                    )
                })?;
                let day = calendar
                    .index(date)
                    .ok_or_else(|| format!("{date} is not a trading day of the index calendar"))?;
                Ok(PriceRow {
                    line,
                    symbol,
                    day: day as u32,
                    open,
                    close,
                })
            });
            match row {
                Ok(r) => rows.push(r),
                Err(reason) => bad.push(BadRow {
                    file: file.into(),
                    line,
                    reason,
                }),
            }
        }
        (rows, bad)
    };
    let results = parallel_chunks(body, threads, parse_chunk);

    let days = calendar.len();
    let n = universe.symbols.len();
    let mut prices = Prices {
        days,
        open: vec![f64::NAN; n * days],
        close: vec![f64::NAN; n * days],
    };
    let mut bad = BadRows::default();
    let mut order = DateOrder::new(n);
    merge_chunks(results, file, "prices", strict, &mut bad, |r: PriceRow| {
        let s = r.symbol as usize;
        order.check(s, r.day, r.line, universe, calendar)?;
        prices.open[s * days + r.day as usize] = r.open;
        prices.close[s * days + r.day as usize] = r.close;
        Ok(())
    })?;
    Ok((prices, bad, order.unordered))
}

/// A parsed row that knows its line.
trait Numbered {
    fn line(&self) -> u64;
}

impl Numbered for PriceRow {
    fn line(&self) -> u64 {
        self.line
    }
}

impl Numbered for ExposureRow {
    fn line(&self) -> u64 {
        self.line
    }
}

/// Feeds the chunks' rows to `accept` in file order, reporting the chunks' bad rows in line
/// order between them; a row `accept` refuses becomes a bad row with its reason.
fn merge_chunks<T: Numbered>(
    results: Vec<ChunkResult<T>>,
    file: &str,
    role: &str,
    strict: bool,
    bad: &mut BadRows,
    mut accept: impl FnMut(T) -> Result<(), String>,
) -> Result<(), InputError> {
    for (rows, chunk_bad) in results {
        let mut chunk_bad = chunk_bad.into_iter().peekable();
        for r in rows {
            while let Some(b) = chunk_bad.next_if(|b| b.line < r.line()) {
                bad.push(role, b, strict)?;
            }
            let line = r.line();
            if let Err(reason) = accept(r) {
                bad.push(
                    role,
                    BadRow {
                        file: file.into(),
                        line,
                        reason,
                    },
                    strict,
                )?;
            }
        }
        for b in chunk_bad {
            bad.push(role, b, strict)?;
        }
    }
    Ok(())
}

/// Per symbol, the rows accepted so far: a repeated date is refused; rows dated before a
/// later row of the same symbol are accepted (placed by date) and counted.
struct DateOrder {
    /// Latest accepted day per symbol.
    last: Vec<Option<u32>>,
    /// Line of each accepted (symbol, day).
    seen: HashMap<(u32, u32), u64>,
    /// Rows that came after a later date of the same symbol.
    unordered: u64,
}

impl DateOrder {
    fn new(symbols: usize) -> Self {
        Self {
            last: vec![None; symbols],
            seen: HashMap::default(),
            unordered: 0,
        }
    }

    /// Accepts (and remembers) `day` for `symbol`, or says why not.
    fn check(
        &mut self,
        symbol: usize,
        day: u32,
        line: u64,
        universe: &Universe,
        calendar: &Calendar,
    ) -> Result<(), String> {
        let date = calendar.dates[day as usize];
        let name = &universe.symbols[symbol];
        if let Some(first) = self.seen.get(&(symbol as u32, day)) {
            return Err(format!(
                "duplicate row for `{name}` on {date} (first on line {first})"
            ));
        }
        self.seen.insert((symbol as u32, day), line);
        match self.last[symbol] {
            Some(d) if d > day => self.unordered += 1,
            _ => self.last[symbol] = Some(day),
        }
        Ok(())
    }
}

/// Runs `parse` over line-aligned chunks of `body` on up to `threads` threads; results in order.
fn parallel_chunks<T: Send>(
    body: &[u8],
    threads: usize,
    parse: impl Fn((u64, &[u8])) -> ChunkResult<T> + Sync,
) -> Vec<ChunkResult<T>> {
    // Small inputs are not worth a thread.
    let parts = if body.len() < 1 << 20 { 1 } else { threads };
    let pieces = chunks(body, 2, parts);
    if pieces.len() <= 1 {
        return pieces.into_iter().map(&parse).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .into_iter()
            .map(|piece| {
                let parse = &parse;
                scope.spawn(move || parse(piece))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("chunk parser does not panic"))
            .collect()
    })
}

// ---------- factor exposures ----------

struct ExposureRow {
    line: u64,
    symbol: u32,
    day: u32,
    values: Vec<f64>,
}

fn parse_factors(
    (file, bytes): (&str, &[u8]),
    universe: &Universe,
    calendar: &Calendar,
    strict: bool,
    threads: usize,
) -> Result<(Exposures, BadRows, u64), InputError> {
    let (header, body) = split_header(file, bytes)?;
    let cols = header.columns(&["date", "symbol"])?;
    let names = &header.names;
    let factor_cols: Vec<usize> = (0..names.len()).filter(|i| !cols.contains(i)).collect();
    if factor_cols.is_empty() {
        return Err(InputError::Invalid {
            file: file.into(),
            message: "no factor columns after date,symbol".into(),
        });
    }
    let factors: Vec<String> = factor_cols.iter().map(|&i| names[i].clone()).collect();
    let parse_chunk = |(first_line, chunk): (u64, &[u8])| -> ChunkResult<ExposureRow> {
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        let mut fields = Vec::new();
        for (line, text) in lines(chunk, first_line) {
            let row = split_row(text, header.width(), &mut fields).and_then(|()| {
                let date = parse_date(field(&fields, cols[0], "date")?)?;
                let symbol = field(&fields, cols[1], "symbol")?;
                let values = factor_cols
                    .iter()
                    .zip(&factors)
                    .map(|(&c, name)| parse_number(field(&fields, c, name)?, name))
                    .collect::<Result<Vec<f64>, String>>()?;
                let symbol = *universe.lookup.get(symbol).ok_or_else(|| {
                    format!(
                        "symbol `{}` is not in the universe",
                        excerpt(symbol.as_bytes())
                    )
                })?;
                let day = calendar
                    .index(date)
                    .ok_or_else(|| format!("{date} is not a trading day of the index calendar"))?;
                Ok(ExposureRow {
                    line,
                    symbol,
                    day: day as u32,
                    values,
                })
            });
            match row {
                Ok(r) => rows.push(r),
                Err(reason) => bad.push(BadRow {
                    file: file.into(),
                    line,
                    reason,
                }),
            }
        }
        (rows, bad)
    };
    let results = parallel_chunks(body, threads, parse_chunk);

    let n = universe.symbols.len();
    let mut per_symbol: Vec<Vec<(u32, Vec<f64>)>> = vec![Vec::new(); n];
    let mut bad = BadRows::default();
    let mut order = DateOrder::new(n);
    merge_chunks(
        results,
        file,
        "factors",
        strict,
        &mut bad,
        |r: ExposureRow| {
            let s = r.symbol as usize;
            order.check(s, r.day, r.line, universe, calendar)?;
            per_symbol[s].push((r.day, r.values));
            Ok(())
        },
    )?;

    let mut row_days = Vec::with_capacity(n);
    let mut row_values = Vec::with_capacity(n);
    for mut rows in per_symbol {
        // Rows may come in any order; exposures in force are looked up by ascending day.
        rows.sort_by_key(|(d, _)| *d);
        row_days.push(rows.iter().map(|(d, _)| *d).collect());
        row_values.push(rows.into_iter().flat_map(|(_, v)| v).collect());
    }
    Ok((
        Exposures {
            factors,
            row_days,
            row_values,
        },
        bad,
        order.unordered,
    ))
}

// ---------- events ----------

#[derive(serde::Deserialize)]
struct JsonEvent {
    timestamp: String,
    symbol: String,
    event_type: String,
    #[serde(default)]
    title: String,
}

/// Events as CSV (with a header) or JSON Lines, as `format` says (the caller decides it from
/// the file name or a flag). Every bad line (malformed, not UTF-8, too many or too few fields,
/// a repeated id) is named and counted; event ids are text exactly as written.
fn parse_events(
    (file, bytes): (&str, &[u8]),
    format: Format,
    strict: bool,
    bad: &mut BadRows,
) -> Result<Vec<Event>, InputError> {
    let mut events = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::default();
    let mut accept = |line: u64, row: Result<Event, String>, bad: &mut BadRows| {
        let reason = match row {
            Ok(event) => match seen.get(&event.event_id) {
                Some(first) => format!(
                    "duplicate event_id `{}` (first on line {first})",
                    excerpt(event.event_id.as_bytes())
                ),
                None => {
                    seen.insert(event.event_id.clone(), line);
                    events.push(event);
                    return Ok(());
                }
            },
            Err(reason) => reason,
        };
        bad.push(
            "events",
            BadRow {
                file: file.into(),
                line,
                reason,
            },
            strict,
        )
    };
    match format {
        Format::Jsonl => {
            for (line, text) in text_lines(bytes) {
                let row = text.and_then(|text| {
                    let id = json_line_id(text)?;
                    let e: JsonEvent =
                        json_object(text).map_err(|e| format!("not an event object: {e}"))?;
                    make_event(&id, &e.timestamp, &e.symbol, &e.event_type, &e.title)
                });
                accept(line, row, bad)?;
            }
        }
        Format::Csv => {
            let table = Table::parse(file, bytes)?;
            let cols = table.header.columns(&[
                "event_id",
                "timestamp",
                "symbol",
                "event_type",
                "title",
            ])?;
            for (line, fields) in table.rows() {
                let row = fields.and_then(|f| {
                    let get = |i: usize| f[cols[i]].as_ref();
                    make_event(get(0), get(1), get(2), get(3), get(4))
                });
                accept(line, row, bad)?;
            }
        }
    }
    Ok(events)
}

fn make_event(
    id: &str,
    timestamp: &str,
    symbol: &str,
    event_type: &str,
    title: &str,
) -> Result<Event, String> {
    if id.is_empty() {
        return Err("missing event_id".into());
    }
    if symbol.is_empty() {
        return Err("missing symbol".into());
    }
    let timestamp = DateTime::parse_from_rfc3339(timestamp).map_err(|e| {
        format!(
            "timestamp `{}` is not RFC 3339 with an offset: {e}",
            excerpt(timestamp.as_bytes())
        )
    })?;
    Ok(Event {
        event_id: id.to_string(),
        timestamp,
        symbol: symbol.to_string(),
        event_type: event_type.to_string(),
        title: title.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIVERSE: &str = "symbol,index,industry\nA,IDX,bank\nB,IDX,tech\n";
    const INDICES: &str =
        "date,index,close\n2024-01-02,IDX,100\n2024-01-03,IDX,101\n2024-01-04,IDX,99\n";

    fn parse(prices: &str, events: &str, strict: bool) -> Result<Dataset, InputError> {
        parse_as(prices, ("events.csv", events), strict)
    }

    fn parse_as(prices: &str, events: (&str, &str), strict: bool) -> Result<Dataset, InputError> {
        Dataset::parse(
            &Sources {
                prices: ("prices.csv", prices.as_bytes()),
                indices: ("indices.csv", INDICES.as_bytes()),
                universe: ("universe.csv", UNIVERSE.as_bytes()),
                factors: None,
                events: (events.0, events.1.as_bytes()),
                events_format: None,
            },
            strict,
        )
    }

    const EVENTS: &str = "event_id,timestamp,symbol,event_type,title\n\
        e1,2024-01-02T10:00:00+08:00,A,dividend,\"Pays, generously\"\n";

    #[test]
    fn parses_panels_and_reports_bad_rows_with_lines() {
        let prices = "date,symbol,open,close,volume\n\
            2024-01-02,A,10,10.5,1\n\
            2024-01-03,A,10.5,x,1\n\
            2024-01-03,Z,1,1,1\n\
            2024-01-04,A,10,11,1\n\
            2024-01-04,A,10,11,1\n\
            2024-01-03,B,5,5,1\n\
            2024-01-02,B,5,5,1\n\
            2024-01-06,B,5,5,1\n";
        let d = parse(prices, EVENTS, false).unwrap();
        assert_eq!(d.calendar.len(), 3);
        assert_eq!(d.prices.close_of(0)[0], 10.5);
        assert!(d.prices.close_of(0)[1].is_nan());
        assert_eq!(d.prices.close_of(0)[2], 11.0);
        assert_eq!(d.prices.close_of(1)[1], 5.0);
        // B's 2024-01-02 row comes after its 2024-01-03 row: placed by date, and noted.
        assert_eq!(d.prices.close_of(1)[0], 5.0);
        assert_eq!(d.notes.len(), 1);
        assert!(
            d.notes[0].starts_with("prices.csv: 1 row(s)"),
            "{:?}",
            d.notes
        );
        assert_eq!(d.bad_rows.counts["prices"], 4);
        let lines: Vec<u64> = d.bad_rows.examples.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 6, 9]);
        let text: Vec<String> = d.bad_rows.examples.iter().map(|b| b.to_string()).collect();
        assert_eq!(text[0], "prices.csv:3: close `x` is not a finite number");
        assert_eq!(text[1], "prices.csv:4: symbol `Z` is not in the universe");
        assert_eq!(
            text[2],
            "prices.csv:6: duplicate row for `A` on 2024-01-04 (first on line 5)"
        );
        assert_eq!(
            text[3],
            "prices.csv:9: 2024-01-06 is not a trading day of the index calendar"
        );
        assert_eq!(d.events[0].title, "Pays, generously");

        let err = parse(prices, EVENTS, true).unwrap_err().to_string();
        assert_eq!(
            err,
            "prices.csv:3: close `x` is not a finite number (strict mode stops at the first bad row)"
        );
    }

    #[test]
    fn events_in_csv_and_jsonl_with_duplicates_and_bad_timestamps() {
        let prices = "date,symbol,open,close\n2024-01-02,A,10,10\n";
        let jsonl = "{\"event_id\": 7, \"timestamp\": \"2024-01-02T10:00:00+08:00\", \"symbol\": \"A\", \"event_type\": \"分红转送\", \"title\": \"t\"}\n\
            {\"event_id\": \"7\", \"timestamp\": \"2024-01-02T10:00:00+08:00\", \"symbol\": \"A\", \"event_type\": \"x\", \"title\": \"t\"}\n\
            {\"event_id\": \"8\", \"timestamp\": \"2024-01-02 10:00\", \"symbol\": \"A\", \"event_type\": \"x\", \"title\": \"t\"}\n\
            not json\n";
        let d = parse_as(prices, ("events.jsonl", jsonl), false).unwrap();
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.events[0].event_id, "7");
        assert_eq!(d.bad_rows.counts["events"], 3);
        assert!(
            d.bad_rows.examples[0]
                .reason
                .contains("duplicate event_id `7` (first on line 1)")
        );
        assert!(d.bad_rows.examples[1].reason.contains("not RFC 3339"));
        assert_eq!(d.bad_rows.examples[2].line, 4);

        let csv = "event_id,timestamp,symbol,event_type,title\ne1,2024-01-02T10:00:00Z,A,x,t\ne1,2024-01-02T10:00:00Z,A,x,t\n";
        let d = parse(prices, csv, false).unwrap();
        assert_eq!(d.bad_rows.examples[0].line, 3);
    }

    #[test]
    fn missing_columns_and_empty_files_are_named() {
        let err = parse("date,symbol,close\n", EVENTS, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "prices.csv: header lacks required column `open` (header: date,symbol,close)"
        );
        let err = parse("", EVENTS, false).unwrap_err().to_string();
        assert!(err.starts_with("prices.csv: empty file"), "{err}");
    }

    #[test]
    fn the_fast_decimal_path_agrees_with_std_parsing() {
        let mut rng = crate::rng::Rng::new(9);
        for _ in 0..200_000 {
            let int_digits = rng.below(8) as usize;
            let frac_digits = rng.below(9) as usize;
            let mut text = String::new();
            if rng.bernoulli(0.3) {
                text.push('-');
            }
            for _ in 0..int_digits.max(1) {
                text.push((b'0' + rng.below(10) as u8) as char);
            }
            if frac_digits > 0 {
                text.push('.');
                for _ in 0..frac_digits {
                    text.push((b'0' + rng.below(10) as u8) as char);
                }
            }
            let fast = fast_decimal(&text).unwrap();
            assert_eq!(
                fast.to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
        }
        for odd in [
            "1e5",
            "1.2.3",
            "",
            "-",
            ".",
            "+1",
            "0.1234567890123456",
            "inf",
            "NaN",
        ] {
            assert!(fast_decimal(odd).is_none(), "{odd}");
        }
    }

    #[test]
    fn chunks_cover_the_body_at_line_boundaries() {
        let body = b"a\nbb\nccc\ndddd\n";
        for parts in 1..6 {
            let pieces = chunks(body, 2, parts);
            let joined: Vec<u8> = pieces.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            assert_eq!(joined, body);
            for (line, piece) in &pieces {
                let first = lines(piece, *line).next().unwrap();
                let expected = body
                    .split(|b| *b == b'\n')
                    .position(|l| l == first.1)
                    .unwrap() as u64
                    + 2;
                assert_eq!(first.0, expected);
            }
        }
    }

    #[test]
    fn exposures_forward_fill_from_the_latest_row() {
        let factors = "date,symbol,size,momentum\n2024-01-02,A,1.5,-0.5\n2024-01-04,A,2,0\n2024-01-03,B,0.1,0.2\n";
        let d = Dataset::parse(
            &Sources {
                prices: ("p", b"date,symbol,open,close\n2024-01-02,A,1,1\n"),
                indices: ("i", INDICES.as_bytes()),
                universe: ("u", UNIVERSE.as_bytes()),
                factors: Some(("f", factors.as_bytes())),
                events: ("e", EVENTS.as_bytes()),
                events_format: Some(Format::Csv),
            },
            true,
        )
        .unwrap();
        let x = d.exposures.unwrap();
        assert_eq!(x.factors, vec!["size", "momentum"]);
        assert_eq!(x.at(0, 0), Some(&[1.5, -0.5][..]));
        assert_eq!(x.at(1, 0), Some(&[1.5, -0.5][..]));
        assert_eq!(x.at(2, 0), Some(&[2.0, 0.0][..]));
        assert_eq!(x.at(0, 1), None);
        assert_eq!(x.at(2, 1), Some(&[0.1, 0.2][..]));
        let mut cursor = x.cursor();
        for day in 0..3 {
            cursor.advance(day);
            for s in 0..2 {
                assert_eq!(cursor.get(s), x.at(day, s), "day {day} symbol {s}");
            }
        }
    }
}
