//! Typing PostgreSQL's text output of column values into [`Value`]s.
//!
//! Logical replication (pgoutput) and `COPY ... TO STDOUT` both hand us each column in its
//! type's text output form. [`parse_text_value`] turns that text into a typed, lossless
//! [`Value`] chosen by the column's type OID; [`split_copy_text_row`] first cuts one line of
//! `COPY` text format into its fields.
//!
//! ```text
//!   COPY ... TO STDOUT line
//!        │ split_copy_text_row
//!        ▼
//!   Option<String> per column          pgoutput TupleData, text column
//!        └─────────────────┬─────────────────┘
//!                          ▼ parse_text_value(type OID, text)
//!                        Value
//! ```
//!
//! # Representations
//!
//! | PostgreSQL type (OID) | [`Value`] |
//! |---|---|
//! | `bool` (16) | `Bool` |
//! | `bytea` (17) | `Bytes`, decoded from hex `\x…` |
//! | `"char"` (18) | `Text`, verbatim: `""` for the zero byte, `\ooo` for bytes ≥ 0x80 |
//! | `name` (19), `text` (25), `bpchar` (1042), `varchar` (1043) | `Text`, verbatim (padding kept) |
//! | `int2` (21), `int4` (23), `int8` (20) | `Int16`, `Int32`, `Int64` |
//! | `oid` (26) | `Int64`: an oid is unsigned 32-bit, which `Int32` cannot hold |
//! | `float4` (700), `float8` (701) | `Float32`, `Float64`, including NaN and ±infinity |
//! | `numeric` (1700) | `Numeric`, the text verbatim after checking its syntax |
//! | `date` (1082) | `Date`: days since 1970-01-01, `±infinity` as `i32::MAX`/`i32::MIN` |
//! | `time` (1083) | `Time`: microseconds since midnight, `24:00:00` = 86 400 000 000 |
//! | `timestamp` (1114) | `Timestamp`: microseconds since 1970-01-01 00:00:00 |
//! | `timestamptz` (1184) | `TimestampTz`: microseconds since 1970-01-01 00:00:00 UTC |
//! | `uuid` (2950) | `Uuid`, the 16 bytes |
//! | `json` (114), `jsonb` (3802) | `Json`, the document text verbatim |
//! | `xml` (142), `interval` (1186), `timetz` (1266), any other OID | `Other`, verbatim |
//! | arrays of the types above | `Array` of the element values (NULL elements are `Null`) |
//! | arrays with several dimensions or explicit bounds (`[0:1]={…}`) | `Other`, verbatim |
//!
//! Both timestamp types read `infinity`/`-infinity` as `i64::MAX`/`i64::MIN`. Dates and
//! timestamps are proleptic Gregorian with astronomical years (1 BC is year 0, a leap year),
//! as in PostgreSQL, and must lie in PostgreSQL's range (dates from 4714-11-24 BC to
//! 5874897-12-31). Timestamps after 294247-01-10 04:00:54.775806 (UTC),
//! the last thirty years or so of PostgreSQL's range, do not fit in `i64` microseconds since
//! 1970 without taking the infinity sentinel, and are rejected as out of range.
//!
//! # Session settings relied on
//!
//! The sessions that produce the text run with `DateStyle = 'ISO, MDY'`, `TimeZone = 'UTC'`,
//! `IntervalStyle = postgres`, `extra_float_digits = 3` and `bytea_output = hex`. Under
//! another `DateStyle` or `bytea_output` dates, timestamps and `bytea` fail to parse: an
//! error, never a wrong value. `timestamptz` text is read with whatever UTC offset it carries
//! (`+00`, `+05:30`, `-04:56:02`), so `TimeZone` only changes the text, not the value.
//! `extra_float_digits = 3` is what makes floats exact; with less, PostgreSQL rounds them and
//! nothing here can tell. Interval text is kept as it is, so `IntervalStyle` only fixes its
//! shape.
//!
//! # COPY text format
//!
//! Fields are separated by tabs; a field that is exactly `\N` is NULL; `\b \f \n \r \t \v \\`,
//! `\ddd` (octal, low 8 bits kept) and `\xh`/`\xhh` are decoded and any other escaped byte
//! stands for itself, as PostgreSQL's `COPY FROM` reads them. A raw newline inside the line, a
//! trailing lone backslash and the end-of-data marker `\.` are errors, and every decoded
//! field must be UTF-8.
//!
//! The parsers accept what PostgreSQL prints under those settings, not everything its input
//! functions would take, and they never panic: every error is a [`ValueError`].

use std::num::{IntErrorKind, ParseIntError};
use std::str::FromStr;

use cdc_core::{ColumnKind, PgType, Value};

const USEC_PER_SEC: i64 = 1_000_000;
const USEC_PER_DAY: i64 = 86_400 * USEC_PER_SEC;
/// 4714-11-24 BC (Julian day 0), PostgreSQL's first date.
const MIN_DATE: i64 = days_from_civil(-4713, 11, 24);
/// 5874898-01-01, the first date past PostgreSQL's last.
const END_DATE: i64 = days_from_civil(5_874_898, 1, 1);
/// 4714-11-24 00:00:00 BC, PostgreSQL's first timestamp.
const MIN_TIMESTAMP: i64 = MIN_DATE * USEC_PER_DAY;
/// Longest quote of bad text kept in an error, in characters.
const QUOTE_CHARS: usize = 40;

/// A column value whose text is not what PostgreSQL prints for its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The text does not have the shape of the type's output.
    #[error("invalid {type_name} text {text:?}: {reason}")]
    Syntax {
        /// PostgreSQL's name for the type.
        type_name: &'static str,
        /// The start of the bad text.
        text: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The text is well formed but names a value the type, or its `Value`, cannot hold.
    #[error("{type_name} value {text:?} out of range: {reason}")]
    OutOfRange {
        /// PostgreSQL's name for the type.
        type_name: &'static str,
        /// The start of the bad text.
        text: String,
        /// Which limit was passed.
        reason: &'static str,
    },
    /// One element of an array is bad; the source says how.
    #[error("element {index} of {type_name} value {text:?} is invalid")]
    Element {
        /// PostgreSQL's name for the array type, such as `int4[]`.
        type_name: &'static str,
        /// The element's position, counting from 1 as PostgreSQL does.
        index: usize,
        /// The start of the array's text.
        text: String,
        /// Why the element is bad.
        #[source]
        source: Box<ValueError>,
    },
    /// A line of `COPY` text format is malformed.
    #[error("malformed COPY text row {text:?}: {reason}")]
    CopyRow {
        /// The start of the line.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `COPY` field decodes to bytes that are not UTF-8.
    #[error("COPY text field {column} {text:?} is not valid UTF-8")]
    CopyUtf8 {
        /// The field's position in the row, counting from 1.
        column: usize,
        /// The start of the field, invalid bytes shown as U+FFFD.
        text: String,
    },
}

/// Parses PostgreSQL's text output of a value of type `type_oid` into a [`Value`].
pub fn parse_text_value(type_oid: u32, text: &str) -> Result<Value, ValueError> {
    match ColumnKind::of(type_oid) {
        ColumnKind::Scalar(ty) => parse_scalar(ty, text).map_err(|bad| bad.at(type_oid, text)),
        ColumnKind::Array(element) => parse_array(type_oid, element.oid(), text),
        ColumnKind::Verbatim => Ok(Value::Other(text.to_owned())),
    }
}

fn parse_scalar(ty: PgType, text: &str) -> Result<Value, Bad> {
    match ty {
        PgType::Bool => parse_bool(text).map(Value::Bool),
        PgType::Bytea => parse_bytea(text).map(Value::Bytes),
        PgType::Char => check_char(text).map(|()| Value::Text(text.to_owned())),
        PgType::Name | PgType::Text | PgType::Bpchar | PgType::Varchar => {
            Ok(Value::Text(text.to_owned()))
        }
        PgType::Int2 => parse_int(text).map(Value::Int16),
        PgType::Int4 => parse_int(text).map(Value::Int32),
        PgType::Int8 => parse_int(text).map(Value::Int64),
        PgType::Oid => parse_int::<u32>(text).map(|oid| Value::Int64(i64::from(oid))),
        PgType::Float4 => parse_float(
            text,
            [f32::NAN, f32::INFINITY, f32::NEG_INFINITY],
            f32::is_finite,
        )
        .map(Value::Float32),
        PgType::Float8 => parse_float(
            text,
            [f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
            f64::is_finite,
        )
        .map(Value::Float64),
        PgType::Numeric => check_numeric(text).map(|()| Value::Numeric(text.to_owned())),
        PgType::Date => parse_date(text).map(Value::Date),
        PgType::Time => parse_clock(text).map(Value::Time),
        PgType::Timestamp => parse_timestamp(text, false).map(Value::Timestamp),
        PgType::TimestampTz => parse_timestamp(text, true).map(Value::TimestampTz),
        PgType::Uuid => parse_uuid(text).map(Value::Uuid),
        PgType::Json | PgType::Jsonb => Ok(Value::Json(text.to_owned())),
    }
}

/// The element type OID of a supported one-dimensional array type, or `None`.
pub fn element_type_oid(array_oid: u32) -> Option<u32> {
    PgType::from_array_oid(array_oid).map(PgType::oid)
}

/// Splits one line of `COPY ... TO STDOUT` text format into its fields, `None` for `\N`.
pub fn split_copy_text_row(line: &[u8]) -> Result<Vec<Option<String>>, ValueError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let row_error = |reason| ValueError::CopyRow {
        text: quote(&String::from_utf8_lossy(line)),
        reason,
    };
    if line == b"\\." {
        return Err(row_error("this is the end-of-data marker, not a row"));
    }
    let mut fields = Vec::new();
    let mut pos = 0;
    loop {
        let start = pos;
        let mut decoded = Vec::new();
        let mut more = false;
        while let Some(&byte) = line.get(pos) {
            pos += 1;
            match byte {
                b'\t' => {
                    more = true;
                    break;
                }
                b'\n' | b'\r' => {
                    return Err(row_error("raw newline or carriage return inside the row"))
                }
                b'\\' => {
                    let Some(&escaped) = line.get(pos) else {
                        return Err(row_error("backslash at the end of the row"));
                    };
                    pos += 1;
                    decoded.push(match escaped {
                        b'0'..=b'7' => {
                            // One to three octal digits; like PostgreSQL, keep the low 8 bits.
                            let mut value = escaped - b'0';
                            for _ in 0..2 {
                                match line.get(pos) {
                                    Some(&digit @ b'0'..=b'7') => {
                                        value = value.wrapping_mul(8).wrapping_add(digit - b'0');
                                        pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            value
                        }
                        b'x' => match line.get(pos).and_then(|&b| hex_value(b)) {
                            // One or two hex digits; a bare `\x` is the letter x.
                            Some(high) => {
                                pos += 1;
                                match line.get(pos).and_then(|&b| hex_value(b)) {
                                    Some(low) => {
                                        pos += 1;
                                        (high << 4) | low
                                    }
                                    None => high,
                                }
                            }
                            None => b'x',
                        },
                        b'b' => 0x08,
                        b'f' => 0x0C,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'v' => 0x0B,
                        other => other,
                    });
                }
                other => decoded.push(other),
            }
        }
        let raw_end = if more { pos.saturating_sub(1) } else { pos };
        if line.get(start..raw_end) == Some(b"\\N".as_slice()) {
            fields.push(None);
        } else {
            let column = fields.len() + 1;
            let text = String::from_utf8(decoded).map_err(|e| ValueError::CopyUtf8 {
                column,
                text: quote(&String::from_utf8_lossy(e.as_bytes())),
            })?;
            fields.push(Some(text));
        }
        if !more {
            return Ok(fields);
        }
    }
}

/// Why a value's text was refused, before the type and text are attached.
enum Bad {
    Syntax(&'static str),
    Range(&'static str),
}

impl Bad {
    fn at(self, type_oid: u32, text: &str) -> ValueError {
        let type_name = type_name(type_oid);
        let text = quote(text);
        match self {
            Bad::Syntax(reason) => ValueError::Syntax {
                type_name,
                text,
                reason,
            },
            Bad::Range(reason) => ValueError::OutOfRange {
                type_name,
                text,
                reason,
            },
        }
    }
}

/// PostgreSQL's name for a type this module knows, for error messages.
fn type_name(type_oid: u32) -> &'static str {
    ColumnKind::of(type_oid).name()
}

/// The first [`QUOTE_CHARS`] characters of `text`, with `…` when cut.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

fn parse_bool(text: &str) -> Result<bool, Bad> {
    match text {
        "t" | "true" => Ok(true),
        "f" | "false" => Ok(false),
        _ => Err(Bad::Syntax("expected 't' or 'f'")),
    }
}

fn parse_bytea(text: &str) -> Result<Vec<u8>, Bad> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or(Bad::Syntax(
            "expected hex format '\\x…' (bytea_output = hex)",
        ))?
        .as_bytes();
    if hex.len() % 2 != 0 {
        return Err(Bad::Syntax("odd number of hex digits"));
    }
    hex.chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some((hex_value(*high)? << 4) | hex_value(*low)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(Bad::Syntax("not a hex digit"))
}

/// Checks `"char"` output: empty (the zero byte), one ASCII character, or `\ooo` for a byte
/// with the high bit set.
fn check_char(text: &str) -> Result<(), Bad> {
    let ok = match text.as_bytes() {
        [] => true,
        [byte] => byte.is_ascii(),
        [b'\\', high, mid, low] => {
            matches!(high, b'2' | b'3') && is_octal_digit(*mid) && is_octal_digit(*low)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Bad::Syntax(
            "expected one ASCII character or a \\ooo octal escape",
        ))
    }
}

fn parse_int<T: FromStr<Err = ParseIntError>>(text: &str) -> Result<T, Bad> {
    text.parse().map_err(|e: ParseIntError| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
            Bad::Range("does not fit the type")
        }
        _ => Bad::Syntax("expected a decimal integer"),
    })
}

/// Parses float output; `specials` are NaN, +infinity and -infinity of the target type.
fn parse_float<T: FromStr + Copy>(
    text: &str,
    [nan, infinity, neg_infinity]: [T; 3],
    is_finite: fn(T) -> bool,
) -> Result<T, Bad> {
    const SYNTAX: &str = "expected a decimal number, NaN, Infinity or -Infinity";
    let spelled = |names: &[&str]| names.iter().any(|name| text.eq_ignore_ascii_case(name));
    if spelled(&["nan"]) {
        return Ok(nan);
    }
    if spelled(&["infinity", "+infinity", "inf", "+inf"]) {
        return Ok(infinity);
    }
    if spelled(&["-infinity", "-inf"]) {
        return Ok(neg_infinity);
    }
    // Letters other than the exponent's are refused here, so `parse` cannot read "inf".
    let number_chars = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if !number_chars {
        return Err(Bad::Syntax(SYNTAX));
    }
    let value: T = text.parse().map_err(|_| Bad::Syntax(SYNTAX))?;
    if is_finite(value) {
        Ok(value)
    } else {
        Err(Bad::Range("overflows the type"))
    }
}

/// Checks numeric output: `NaN`, `Infinity`, `-Infinity`, or digits with an optional minus
/// sign and decimal point. PostgreSQL never prints an exponent or a plus sign.
fn check_numeric(text: &str) -> Result<(), Bad> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Ok(());
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    if all_digits(whole) && fraction.is_none_or(all_digits) {
        Ok(())
    } else {
        Err(Bad::Syntax(
            "expected [-]digits[.digits], NaN, Infinity or -Infinity",
        ))
    }
}

fn parse_uuid(text: &str) -> Result<[u8; 16], Bad> {
    const SYNTAX: &str = "expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex";
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return Err(Bad::Syntax(SYNTAX));
    }
    let mut uuid = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return Err(Bad::Syntax(SYNTAX));
            }
            continue;
        }
        let nibble = hex_value(b).ok_or(Bad::Syntax(SYNTAX))?;
        let slot = uuid.get_mut(nibbles / 2).ok_or(Bad::Syntax(SYNTAX))?;
        *slot = (*slot << 4) | nibble;
        nibbles += 1;
    }
    Ok(uuid)
}

fn parse_date(text: &str) -> Result<i32, Bad> {
    match text {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let (body, bc) = strip_era(text);
    let (year, month, day) = parse_ymd(body, bc)?;
    let days = days_from_civil(year, month, day);
    if !(MIN_DATE..END_DATE).contains(&days) {
        return Err(Bad::Range("dates run from 4714-11-24 BC to 5874897-12-31"));
    }
    i32::try_from(days).map_err(|_| Bad::Range("does not fit in 32 bits"))
}

/// Parses `timestamp` (or, with `with_offset`, `timestamptz`) output into microseconds since
/// 1970-01-01 00:00:00 (UTC).
fn parse_timestamp(text: &str, with_offset: bool) -> Result<i64, Bad> {
    match text {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let (body, bc) = strip_era(text);
    let (date, rest) = body.split_once(' ').ok_or(Bad::Syntax(
        "expected 'YYYY-MM-DD HH:MM:SS' (DateStyle = ISO)",
    ))?;
    let (clock, offset_secs) = if with_offset {
        let (clock, offset) = rest
            .find(['+', '-'])
            .and_then(|at| rest.split_at_checked(at))
            .ok_or(Bad::Syntax("missing UTC offset such as '+00'"))?;
        (clock, parse_offset(offset)?)
    } else {
        (rest, 0)
    };
    let (year, month, day) = parse_ymd(date, bc)?;
    let micros = parse_clock(clock)?;
    // Years have at most nine digits, so this cannot overflow i128.
    let utc = i128::from(days_from_civil(year, month, day)) * i128::from(USEC_PER_DAY)
        + i128::from(micros)
        - i128::from(offset_secs) * i128::from(USEC_PER_SEC);
    if utc < i128::from(MIN_TIMESTAMP) {
        return Err(Bad::Range("before 4714-11-24 00:00:00 BC"));
    }
    // i64::MAX itself is the infinity sentinel.
    match i64::try_from(utc) {
        Ok(utc) if utc < i64::MAX => Ok(utc),
        _ => Err(Bad::Range(
            "after 294247-01-10 04:00:54.775806, the last microsecond i64 can hold",
        )),
    }
}

/// Parses `HH:MM:SS[.ffffff]` into microseconds since midnight; `24:00:00` is allowed.
fn parse_clock(text: &str) -> Result<i64, Bad> {
    const SYNTAX: &str = "expected HH:MM:SS with up to 6 fractional digits";
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (text, None),
    };
    let mut parts = hms.split(':');
    let (Some(hour), Some(minute), Some(second), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Bad::Syntax(SYNTAX));
    };
    let (Some(hour), Some(minute), Some(second)) =
        (two_digits(hour), two_digits(minute), two_digits(second))
    else {
        return Err(Bad::Syntax(SYNTAX));
    };
    let fraction_micros = match fraction {
        None => 0,
        Some(digits) if (1..=6).contains(&digits.len()) => {
            let mut micros = digits_value(digits).ok_or(Bad::Syntax(SYNTAX))?;
            for _ in digits.len()..6 {
                micros *= 10;
            }
            micros
        }
        Some(_) => return Err(Bad::Syntax(SYNTAX)),
    };
    if hour > 24 || minute > 59 || second > 59 {
        return Err(Bad::Range("hours run to 24, minutes and seconds to 59"));
    }
    if hour == 24 && (minute, second, fraction_micros) != (0, 0, 0) {
        return Err(Bad::Range(
            "24:00:00 is the only time after 23:59:59.999999",
        ));
    }
    let seconds = (i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second);
    Ok(seconds * USEC_PER_SEC + fraction_micros)
}

/// Parses a UTC offset `+HH`, `+HH:MM` or `+HH:MM:SS` (or with `-`) into seconds east of UTC.
fn parse_offset(text: &str) -> Result<i64, Bad> {
    const SYNTAX: &str = "expected a UTC offset such as +00, +05:30 or -04:56:02";
    let (sign, rest) = match (text.strip_prefix('+'), text.strip_prefix('-')) {
        (Some(rest), _) => (1, rest),
        (_, Some(rest)) => (-1, rest),
        _ => return Err(Bad::Syntax(SYNTAX)),
    };
    let mut parts = rest.split(':');
    let hours = parts
        .next()
        .and_then(two_digits)
        .ok_or(Bad::Syntax(SYNTAX))?;
    let mut rest_of = || match parts.next() {
        None => Ok(0),
        Some(part) => two_digits(part).ok_or(Bad::Syntax(SYNTAX)),
    };
    let minutes = rest_of()?;
    let seconds = rest_of()?;
    if parts.next().is_some() {
        return Err(Bad::Syntax(SYNTAX));
    }
    if hours > 15 || minutes > 59 || seconds > 59 {
        return Err(Bad::Range("UTC offsets run to ±15:59:59"));
    }
    Ok(sign * ((i64::from(hours) * 60 + i64::from(minutes)) * 60 + i64::from(seconds)))
}

/// Splits off PostgreSQL's ` BC` suffix.
fn strip_era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (text, false),
    }
}

/// Parses `YYYY-MM-DD` (four to nine year digits) into an astronomical year, month and day,
/// checking the calendar; `bc` counts the year back from 1 BC = year 0.
fn parse_ymd(text: &str, bc: bool) -> Result<(i64, u32, u32), Bad> {
    const SYNTAX: &str = "expected YYYY-MM-DD (DateStyle = ISO)";
    let mut parts = text.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Bad::Syntax(SYNTAX));
    };
    if year.len() < 4 {
        return Err(Bad::Syntax(SYNTAX));
    }
    if year.len() > 9 {
        return Err(Bad::Range("year has more than nine digits"));
    }
    let (Some(year), Some(month), Some(day)) =
        (digits_value(year), two_digits(month), two_digits(day))
    else {
        return Err(Bad::Syntax(SYNTAX));
    };
    if year == 0 {
        return Err(Bad::Range("there is no year 0: 1 BC precedes AD 1"));
    }
    let year = if bc { 1 - year } else { year };
    if !(1..=12).contains(&month) {
        return Err(Bad::Range("months run from 01 to 12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(Bad::Range("no such day in that month"));
    }
    Ok((year, month, day))
}

/// Days from 1970-01-01 to a proleptic Gregorian date with an astronomical year (0 = 1 BC).
///
/// Callers pass a month in 1..=12 and a year of at most nine digits, so nothing overflows.
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Days from 0000-01-01 to 1970-01-01.
    const DAYS_0000_TO_1970: i64 = 719_528;
    // Leap years in [0, year): multiples of 4, less multiples of 100, plus multiples of 400.
    // Floor division keeps the count right (negative) for years before 0.
    let leap_days =
        (year + 3).div_euclid(4) - (year + 99).div_euclid(100) + (year + 399).div_euclid(400);
    let days_before_month = match month {
        1 => 0,
        2 => 31,
        3 => 59,
        4 => 90,
        5 => 120,
        6 => 151,
        7 => 181,
        8 => 212,
        9 => 243,
        10 => 273,
        11 => 304,
        _ => 334,
    } + if month > 2 && is_leap(year) { 1 } else { 0 };
    year * 365 + leap_days + days_before_month + day as i64 - 1 - DAYS_0000_TO_1970
}

const fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses one PostgreSQL array literal of a one-dimensional array with default bounds.
fn parse_array(array_oid: u32, element_oid: u32, text: &str) -> Result<Value, ValueError> {
    let syntax = |reason| ValueError::Syntax {
        type_name: type_name(array_oid),
        text: quote(text),
        reason,
    };
    let mut chars = text.trim_start_matches(is_array_space).chars().peekable();
    match chars.next() {
        // Explicit bounds, printed only when the lower bound is not 1.
        Some('[') => return Ok(Value::Other(text.to_owned())),
        Some('{') => {}
        _ => return Err(syntax("array literal must start with '{'")),
    }
    skip_array_space(&mut chars);
    let mut items = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
    } else {
        loop {
            skip_array_space(&mut chars);
            if items.is_empty() && chars.peek() == Some(&'{') {
                // A nested array: more than one dimension.
                return Ok(Value::Other(text.to_owned()));
            }
            let item = match read_array_element(&mut chars).map_err(syntax)? {
                None => Value::Null,
                Some(element) => parse_text_value(element_oid, &element).map_err(|source| {
                    ValueError::Element {
                        type_name: type_name(array_oid),
                        index: items.len() + 1,
                        text: quote(text),
                        source: Box::new(source),
                    }
                })?,
            };
            items.push(item);
            match chars.next() {
                Some(',') => {}
                Some('}') => break,
                _ => return Err(syntax("expected ',' or '}' after an element")),
            }
        }
    }
    skip_array_space(&mut chars);
    if chars.next().is_some() {
        return Err(syntax("text after the closing '}'"));
    }
    Ok(Value::Array(items))
}

/// Reads one element up to (not including) its ',' or '}'; `None` is an unquoted `NULL`.
fn read_array_element(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Option<String>, &'static str> {
    const UNTERMINATED: &str = "array literal ends inside an element";
    let mut element = String::new();
    if chars.peek() == Some(&'"') {
        chars.next();
        loop {
            match chars.next() {
                None => return Err(UNTERMINATED),
                Some('"') => break,
                Some('\\') => element.push(chars.next().ok_or(UNTERMINATED)?),
                Some(c) => element.push(c),
            }
        }
        skip_array_space(chars);
        return Ok(Some(element));
    }
    // Unquoted: trailing white space is dropped unless escaped.
    let mut kept = 0;
    let mut escaped = false;
    loop {
        match chars.peek().copied() {
            None => return Err(UNTERMINATED),
            Some(',' | '}') => break,
            Some('"' | '{') => return Err("unexpected '\"' or '{' in an unquoted element"),
            Some('\\') => {
                chars.next();
                element.push(chars.next().ok_or(UNTERMINATED)?);
                kept = element.len();
                escaped = true;
            }
            Some(c) => {
                chars.next();
                element.push(c);
                if !is_array_space(c) {
                    kept = element.len();
                }
            }
        }
    }
    element.truncate(kept);
    if element.is_empty() && !escaped {
        return Err("empty unquoted element");
    }
    if !escaped && element.eq_ignore_ascii_case("NULL") {
        return Ok(None);
    }
    Ok(Some(element))
}

/// White space as PostgreSQL's array parser sees it.
fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

fn skip_array_space(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|&c| is_array_space(c)).is_some() {}
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The value of a non-empty run of ASCII digits, or `None` (also on overflow).
fn digits_value(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0i64, |acc, b| {
        let digit = if b.is_ascii_digit() {
            b - b'0'
        } else {
            return None;
        };
        acc.checked_mul(10)?.checked_add(i64::from(digit))
    })
}

/// The value of exactly two ASCII digits.
fn two_digits(text: &str) -> Option<u32> {
    match text.as_bytes() {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
            Some(u32::from(tens - b'0') * 10 + u32::from(ones - b'0'))
        }
        _ => None,
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_octal_digit(b: u8) -> bool {
    matches!(b, b'0'..=b'7')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BOOL: u32 = PgType::Bool.oid();
    const BYTEA: u32 = PgType::Bytea.oid();
    const CHAR: u32 = PgType::Char.oid();
    const NAME: u32 = PgType::Name.oid();
    const INT8: u32 = PgType::Int8.oid();
    const INT2: u32 = PgType::Int2.oid();
    const INT4: u32 = PgType::Int4.oid();
    const TEXT: u32 = PgType::Text.oid();
    const OID: u32 = PgType::Oid.oid();
    const JSON: u32 = PgType::Json.oid();
    const XML: u32 = 142;
    const FLOAT4: u32 = PgType::Float4.oid();
    const FLOAT8: u32 = PgType::Float8.oid();
    const BPCHAR: u32 = PgType::Bpchar.oid();
    const VARCHAR: u32 = PgType::Varchar.oid();
    const DATE: u32 = PgType::Date.oid();
    const TIME: u32 = PgType::Time.oid();
    const TIMESTAMP: u32 = PgType::Timestamp.oid();
    const TIMESTAMPTZ: u32 = PgType::TimestampTz.oid();
    const INTERVAL: u32 = 1186;
    const TIMETZ: u32 = 1266;
    const NUMERIC: u32 = PgType::Numeric.oid();
    const UUID: u32 = PgType::Uuid.oid();
    const JSONB: u32 = PgType::Jsonb.oid();

    /// Every OID with a parser of its own, scalar and array, and the verbatim types.
    fn all_oids() -> Vec<u32> {
        PgType::ALL
            .iter()
            .flat_map(|t| [t.oid(), t.array_oid()])
            .chain([XML, INTERVAL, TIMETZ])
            .collect()
    }

    fn parse(oid: u32, text: &str) -> Value {
        parse_text_value(oid, text).unwrap_or_else(|e| panic!("{text:?} as OID {oid}: {e}"))
    }

    fn is_syntax(oid: u32, text: &str) -> bool {
        matches!(parse_text_value(oid, text), Err(ValueError::Syntax { .. }))
    }

    fn is_out_of_range(oid: u32, text: &str) -> bool {
        matches!(
            parse_text_value(oid, text),
            Err(ValueError::OutOfRange { .. })
        )
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn bool_values() {
        assert_eq!(parse(BOOL, "t"), Value::Bool(true));
        assert_eq!(parse(BOOL, "f"), Value::Bool(false));
        assert_eq!(parse(BOOL, "true"), Value::Bool(true));
        assert!(is_syntax(BOOL, "yes"));
        assert!(is_syntax(BOOL, ""));
    }

    #[test]
    fn bytea_hex() {
        assert_eq!(parse(BYTEA, "\\x01ff"), Value::Bytes(vec![0x01, 0xFF]));
        assert_eq!(
            parse(BYTEA, "\\xDEadBEef"),
            Value::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF])
        );
        assert_eq!(parse(BYTEA, "\\x"), Value::Bytes(vec![]));
        assert!(is_syntax(BYTEA, "\\x0"));
        assert!(is_syntax(BYTEA, "\\xzz"));
        assert!(is_syntax(BYTEA, "01ff"));
        assert!(is_syntax(BYTEA, "\\001\\377"));
    }

    #[test]
    fn char_kept_as_printed() {
        assert_eq!(parse(CHAR, "a"), text("a"));
        assert_eq!(parse(CHAR, ""), text(""));
        assert_eq!(parse(CHAR, "\\"), text("\\"));
        assert_eq!(parse(CHAR, "\\303"), text("\\303"));
        assert!(is_syntax(CHAR, "ab"));
        assert!(is_syntax(CHAR, "é"));
        assert!(is_syntax(CHAR, "\\103"));
        assert!(is_syntax(CHAR, "\\39a"));
    }

    #[test]
    fn text_types_verbatim() {
        for oid in [NAME, TEXT, BPCHAR, VARCHAR] {
            assert_eq!(parse(oid, "ab  "), text("ab  "));
            assert_eq!(parse(oid, ""), text(""));
            assert_eq!(parse(oid, "\\N tab\té"), text("\\N tab\té"));
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse(INT2, "-32768"), Value::Int16(i16::MIN));
        assert_eq!(parse(INT2, "32767"), Value::Int16(i16::MAX));
        assert!(is_out_of_range(INT2, "32768"));
        assert_eq!(parse(INT4, "-2147483648"), Value::Int32(i32::MIN));
        assert!(is_out_of_range(INT4, "2147483648"));
        assert_eq!(parse(INT8, "9223372036854775807"), Value::Int64(i64::MAX));
        assert_eq!(parse(INT8, "-9223372036854775808"), Value::Int64(i64::MIN));
        assert!(is_out_of_range(INT8, "-9223372036854775809"));
        assert_eq!(parse(INT4, "0"), Value::Int32(0));
        for bad in ["", "1.0", " 1", "1 ", "0x10", "--1", "1e3"] {
            assert!(is_syntax(INT4, bad), "{bad:?}");
        }
    }

    #[test]
    fn oid_is_int64() {
        assert_eq!(parse(OID, "4294967295"), Value::Int64(4_294_967_295));
        assert_eq!(parse(OID, "16384"), Value::Int64(16_384));
        assert!(is_out_of_range(OID, "4294967296"));
        assert!(is_syntax(OID, "-1"));
    }

    #[test]
    fn floats() {
        assert_eq!(parse(FLOAT8, "1.5"), Value::Float64(1.5));
        assert_eq!(parse(FLOAT8, "1e+100"), Value::Float64(1e100));
        assert_eq!(parse(FLOAT8, "1.2345e-05"), Value::Float64(1.2345e-5));
        assert_eq!(
            parse(FLOAT8, "123456789012"),
            Value::Float64(123_456_789_012.0)
        );
        assert_eq!(
            parse(FLOAT8, "0.30000000000000004"),
            Value::Float64(0.1 + 0.2)
        );
        assert_eq!(parse(FLOAT8, "Infinity"), Value::Float64(f64::INFINITY));
        assert_eq!(
            parse(FLOAT8, "-Infinity"),
            Value::Float64(f64::NEG_INFINITY)
        );
        assert!(matches!(parse(FLOAT8, "NaN"), Value::Float64(v) if v.is_nan()));
        assert!(
            matches!(parse(FLOAT8, "-0"), Value::Float64(v) if v == 0.0 && v.is_sign_negative())
        );
        assert_eq!(parse(FLOAT4, "0.1"), Value::Float32(0.1));
        assert_eq!(parse(FLOAT4, "3.4028235e+38"), Value::Float32(f32::MAX));
        assert_eq!(parse(FLOAT4, "1e-45"), Value::Float32(f32::from_bits(1)));
        assert_eq!(
            parse(FLOAT4, "-Infinity"),
            Value::Float32(f32::NEG_INFINITY)
        );
        assert!(matches!(parse(FLOAT4, "NaN"), Value::Float32(v) if v.is_nan()));
        assert!(is_out_of_range(FLOAT4, "1e+39"));
        assert!(is_out_of_range(FLOAT8, "1e+309"));
        for bad in [
            "",
            "abc",
            "1e",
            "1.5.5",
            "1,5",
            " 1",
            "infinityy",
            "e5",
            ".",
        ] {
            assert!(is_syntax(FLOAT8, bad), "{bad:?}");
            assert!(is_syntax(FLOAT4, bad), "{bad:?}");
        }
    }

    #[test]
    fn numeric_verbatim_and_checked() {
        for good in [
            "-0.000100",
            "0",
            "12.3400",
            "123456789012345678901234567890.1",
            "NaN",
        ] {
            assert_eq!(parse(NUMERIC, good), Value::Numeric(good.to_owned()));
        }
        assert_eq!(
            parse(NUMERIC, "Infinity"),
            Value::Numeric("Infinity".to_owned())
        );
        assert_eq!(
            parse(NUMERIC, "-Infinity"),
            Value::Numeric("-Infinity".to_owned())
        );
        for bad in [
            "1e5", "", "-", "+1", ".5", "1.", "nan", "inf", "1,5", "--1", "1.2.3", " 1",
        ] {
            assert!(is_syntax(NUMERIC, bad), "{bad:?}");
        }
    }

    #[test]
    fn dates_match_postgres() {
        // Expected values from PostgreSQL 15: `d - '1970-01-01'::date`.
        for (date, days) in [
            ("2000-01-01", 10_957),
            ("1970-01-01", 0),
            ("1969-12-31", -1),
            ("2024-02-29", 19_782),
            ("2000-02-29", 11_016),
            ("1900-03-01", -25_508),
            ("0001-01-01", -719_162),
            ("0001-12-31 BC", -719_163),
            ("0001-02-29 BC", -719_469),
            ("0005-02-29 BC", -720_930),
            ("0044-03-15 BC", -735_160),
            ("4714-11-24 BC", -2_440_588),
            ("5874897-12-31", 2_145_042_905),
            ("10000-01-01", 2_932_897),
        ] {
            assert_eq!(parse(DATE, date), Value::Date(days), "{date}");
        }
        assert_eq!(parse(DATE, "infinity"), Value::Date(i32::MAX));
        assert_eq!(parse(DATE, "-infinity"), Value::Date(i32::MIN));
    }

    #[test]
    fn bad_dates() {
        for range in [
            "2023-02-29",
            "1900-02-29",
            "0002-02-29 BC",
            "0000-01-01",
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "2024-04-31",
            "2024-01-00",
            "4714-11-23 BC",
            "5874898-01-01",
            "1234567890-01-01",
        ] {
            assert!(is_out_of_range(DATE, range), "{range}");
        }
        for syntax in [
            "",
            "24-01-01",
            "2024/01/01",
            "01-02-2024",
            "2024-1-2",
            "2024-01-02 ",
            "2024-01-02 AD",
            "2024-01-02BC",
            "-2024-01-02",
            "+2024-01-02",
            "2024-01-02-03",
            "Infinity",
            "2024-01-02 00:00:00",
        ] {
            assert!(is_syntax(DATE, syntax), "{syntax}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse(TIME, "00:00:00"), Value::Time(0));
        assert_eq!(parse(TIME, "12:34:56.5"), Value::Time(45_296_500_000));
        assert_eq!(parse(TIME, "23:59:59.999999"), Value::Time(86_399_999_999));
        assert_eq!(parse(TIME, "24:00:00"), Value::Time(86_400_000_000));
        assert_eq!(parse(TIME, "00:00:00.000001"), Value::Time(1));
        for range in [
            "24:00:00.000001",
            "24:00:01",
            "24:01:00",
            "25:00:00",
            "12:60:00",
            "12:00:60",
        ] {
            assert!(is_out_of_range(TIME, range), "{range}");
        }
        for syntax in [
            "",
            "12:00",
            "12:00:00.",
            "12:00:00.1234567",
            "1:00:00",
            "12:00:00+00",
            "allballs",
        ] {
            assert!(is_syntax(TIME, syntax), "{syntax}");
        }
    }

    #[test]
    fn timestamps_match_postgres() {
        // Expected values from PostgreSQL 15: `extract(epoch from t) * 1000000`.
        for (ts, micros) in [
            ("1970-01-01 00:00:00.000001", 1),
            ("1970-01-01 00:00:00", 0),
            ("1969-12-31 23:59:59.999999", -1),
            ("2024-01-02 03:04:05.12", 1_704_164_645_120_000),
            ("2024-01-01 24:00:00", 1_704_153_600_000_000),
            ("0044-03-15 00:00:00 BC", -63_517_824_000_000_000),
            ("4714-11-24 00:00:00 BC", -210_866_803_200_000_000),
            ("294247-01-10 04:00:54.775806", i64::MAX - 1),
        ] {
            assert_eq!(parse(TIMESTAMP, ts), Value::Timestamp(micros), "{ts}");
        }
        assert_eq!(parse(TIMESTAMP, "infinity"), Value::Timestamp(i64::MAX));
        assert_eq!(parse(TIMESTAMP, "-infinity"), Value::Timestamp(i64::MIN));
        for range in [
            "294247-01-10 04:00:54.775807",
            "294276-12-31 23:59:59.999999",
            "4714-11-23 23:59:59.999999 BC",
            "2024-02-30 00:00:00",
            "2024-01-01 24:00:00.5",
            "999999999-12-31 23:59:59",
        ] {
            assert!(is_out_of_range(TIMESTAMP, range), "{range}");
        }
        for syntax in [
            "2024-01-02T03:04:05",
            "2024-01-02 03:04:05+00",
            "2024-01-02",
            "2024-01-02  03:04:05",
            "2024-01-02 03:04",
            "Infinity",
        ] {
            assert!(is_syntax(TIMESTAMP, syntax), "{syntax}");
        }
    }

    #[test]
    fn timestamptz_reads_the_offset() {
        // Expected values from PostgreSQL 15, printed under several TimeZone settings.
        for (ts, micros) in [
            ("2024-02-29 12:00:00+05:30", 1_709_188_200_000_000),
            ("2024-02-29 06:30:00+00", 1_709_188_200_000_000),
            ("2024-01-02 03:04:05.123456+00", 1_704_164_645_123_456),
            ("1850-01-01 05:53:28+05:53:28", -3_786_825_600_000_000),
            ("1849-12-31 19:03:58-04:56:02", -3_786_825_600_000_000),
            ("0044-03-15 00:00:00+05:53:28 BC", -63_517_845_208_000_000),
            ("0044-03-14 18:06:32+00 BC", -63_517_845_208_000_000),
            ("2024-01-01 00:00:00+15:59:59", 1_704_009_601_000_000),
            ("294247-01-10 05:00:54.775806+01", i64::MAX - 1),
        ] {
            assert_eq!(parse(TIMESTAMPTZ, ts), Value::TimestampTz(micros), "{ts}");
        }
        assert_eq!(parse(TIMESTAMPTZ, "infinity"), Value::TimestampTz(i64::MAX));
        assert_eq!(
            parse(TIMESTAMPTZ, "-infinity"),
            Value::TimestampTz(i64::MIN)
        );
        for range in [
            "2024-01-01 00:00:00+16",
            "2024-01-01 00:00:00+05:60",
            "2024-01-01 00:00:00+05:30:60",
            "4714-11-24 00:00:00+01 BC",
            "294247-01-10 04:00:54.775807+00",
        ] {
            assert!(is_out_of_range(TIMESTAMPTZ, range), "{range}");
        }
        for syntax in [
            "2024-01-01 00:00:00",
            "2024-01-01 00:00:00+5",
            "2024-01-01 00:00:00+05:3",
            "2024-01-01 00:00:00+0530",
            "2024-01-01 00:00:00+05:30:00:00",
            "2024-01-01 00:00:00 +00",
            "2024-01-01 00:00:00 UTC",
            "2024-01-01 00:00:00+",
        ] {
            assert!(is_syntax(TIMESTAMPTZ, syntax), "{syntax}");
        }
    }

    #[test]
    fn uninterpreted_types_are_other() {
        for (oid, s) in [
            (INTERVAL, "1 year 2 mons 3 days 04:05:06"),
            (TIMETZ, "12:00:00+05:30"),
            (XML, "<a>b</a>"),
            (16_384, "happy"),
            (1187, "{\"1 day\"}"),
            (0, ""),
        ] {
            assert_eq!(parse(oid, s), Value::Other(s.to_owned()));
        }
    }

    #[test]
    fn uuid_bytes() {
        let expected = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            parse(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value::Uuid(expected)
        );
        assert_eq!(
            parse(UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
            Value::Uuid(expected)
        );
        for bad in [
            "",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        ] {
            assert!(is_syntax(UUID, bad), "{bad:?}");
        }
    }

    #[test]
    fn json_verbatim() {
        assert_eq!(
            parse(JSON, "{\"a\": [1, 2]}"),
            Value::Json("{\"a\": [1, 2]}".to_owned())
        );
        assert_eq!(
            parse(JSONB, "{\"a\": 1}"),
            Value::Json("{\"a\": 1}".to_owned())
        );
    }

    #[test]
    fn arrays_of_scalars() {
        assert_eq!(
            parse(1007, "{1,2,NULL}"),
            Value::Array(vec![Value::Int32(1), Value::Int32(2), Value::Null])
        );
        assert_eq!(parse(1007, "{}"), Value::Array(vec![]));
        assert_eq!(parse(1009, " { } "), Value::Array(vec![]));
        assert_eq!(
            parse(1000, "{t,f}"),
            Value::Array(vec![Value::Bool(true), Value::Bool(false)])
        );
        assert_eq!(
            parse(1185, "{\"2024-01-02 03:04:05+00\",infinity}"),
            Value::Array(vec![
                Value::TimestampTz(1_704_164_645_000_000),
                Value::TimestampTz(i64::MAX)
            ])
        );
        assert_eq!(
            parse(1182, "{2000-01-01,\"0044-03-15 BC\"}"),
            Value::Array(vec![Value::Date(10_957), Value::Date(-735_160)])
        );
        assert_eq!(
            parse(1001, "{\"\\\\x00ff\"}"),
            Value::Array(vec![Value::Bytes(vec![0, 0xFF])])
        );
        assert_eq!(
            parse(1002, "{\"\\\\303\",\"\\\"\",\"\\\\\"}"),
            Value::Array(vec![text("\\303"), text("\""), text("\\")])
        );
        assert_eq!(
            parse(199, "{\"{\\\"a\\\":1}\",NULL}"),
            Value::Array(vec![Value::Json("{\"a\":1}".to_owned()), Value::Null])
        );
        assert_eq!(
            parse(1231, "{1.50,NaN,-Infinity}"),
            Value::Array(vec![
                Value::Numeric("1.50".to_owned()),
                Value::Numeric("NaN".to_owned()),
                Value::Numeric("-Infinity".to_owned())
            ])
        );
        assert_eq!(
            parse(1021, "{1.5,-Infinity}"),
            Value::Array(vec![Value::Float32(1.5), Value::Float32(f32::NEG_INFINITY)])
        );
    }

    #[test]
    fn arrays_of_text_quoting() {
        // As PostgreSQL 15 prints ARRAY['a b','NULL',NULL,'','q"x','b\c','{',' x ']::text[].
        assert_eq!(
            parse(1009, r#"{"a b","NULL",NULL,"","q\"x","b\\c","{"," x "}"#),
            Value::Array(vec![
                text("a b"),
                text("NULL"),
                Value::Null,
                text(""),
                text("q\"x"),
                text("b\\c"),
                text("{"),
                text(" x ")
            ])
        );
        // Input-only forms PostgreSQL also accepts: unquoted white space, escapes, null.
        assert_eq!(
            parse(1009, r#"{ a , b\ ,null, " c" ,\N,N\ULL}"#),
            Value::Array(vec![
                text("a"),
                text("b "),
                Value::Null,
                text(" c"),
                text("N"),
                text("NULL")
            ])
        );
        assert_eq!(
            parse(1009, "{é,\"ü,\"}"),
            Value::Array(vec![text("é"), text("ü,")])
        );
        assert_eq!(parse(1009, "{1 2}"), Value::Array(vec![text("1 2")]));
    }

    #[test]
    fn other_array_shapes_are_other() {
        for s in ["[0:1]={1,2}", "{{1,2},{3,4}}", " {{}}", "[1:1][1:1]={{1}}"] {
            assert_eq!(parse(1007, s), Value::Other(s.to_owned()));
        }
    }

    #[test]
    fn malformed_arrays() {
        for bad in [
            "",
            "1,2",
            "{1,2",
            "{1,,2}",
            "{1,}",
            "{,1}",
            "{1,2}x",
            "{\"a}",
            "{a\"b\"}",
            "{1,{2}}",
            "{\"a\" b}",
            "{a\\",
            "}",
            "{",
        ] {
            assert!(is_syntax(1009, bad), "{bad:?}");
        }
        let err = parse_text_value(1007, "{1,x,3}").unwrap_err();
        match &err {
            ValueError::Element {
                type_name,
                index,
                source,
                ..
            } => {
                assert_eq!((*type_name, *index), ("int4[]", 2));
                assert!(matches!(
                    **source,
                    ValueError::Syntax {
                        type_name: "int4",
                        ..
                    }
                ));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "element 2 of int4[] value \"{1,x,3}\" is invalid"
        );
    }

    #[test]
    fn element_types() {
        for array_oid in all_oids() {
            let name = type_name(array_oid);
            match element_type_oid(array_oid) {
                Some(element) => {
                    assert_eq!(name.strip_suffix("[]"), Some(type_name(element)));
                    assert_eq!(element_type_oid(element), None);
                }
                None => assert!(!name.ends_with("[]")),
            }
        }
        assert_eq!(
            all_oids()
                .iter()
                .filter(|&&oid| element_type_oid(oid).is_some())
                .count(),
            21,
            "oid[] included"
        );
        assert_eq!(element_type_oid(1183), Some(TIME));
        assert_eq!(element_type_oid(1187), None);
    }

    #[test]
    fn error_messages_are_short_single_lines() {
        let err = parse_text_value(DATE, "2023-02-29").unwrap_err();
        assert_eq!(
            err.to_string(),
            "date value \"2023-02-29\" out of range: no such day in that month"
        );
        let err = parse_text_value(NUMERIC, "1e5").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("invalid numeric text \"1e5\": "));
        let long = format!("{}\n{}", "x".repeat(100), "é".repeat(100));
        for oid in all_oids() {
            if let Err(err) = parse_text_value(oid, &long) {
                let message = err.to_string();
                assert!(!message.contains('\n'), "{message}");
                assert!(message.len() < 200, "{message}");
                assert!(message.contains("xxxx…"), "{message}");
            }
        }
        let err = split_copy_text_row(b"a\\").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed COPY text row \"a\\\\\": backslash at the end of the row"
        );
    }

    fn row(fields: &[Option<&str>]) -> Vec<Option<String>> {
        fields.iter().map(|f| f.map(str::to_owned)).collect()
    }

    #[test]
    fn copy_rows() {
        assert_eq!(
            split_copy_text_row(b"a\tb\tc").unwrap(),
            row(&[Some("a"), Some("b"), Some("c")])
        );
        assert_eq!(
            split_copy_text_row(b"1\t\\N\n").unwrap(),
            row(&[Some("1"), None])
        );
        assert_eq!(
            split_copy_text_row(b"1\t\\N\r\n").unwrap(),
            row(&[Some("1"), None])
        );
        assert_eq!(split_copy_text_row(b"").unwrap(), row(&[Some("")]));
        assert_eq!(split_copy_text_row(b"\n").unwrap(), row(&[Some("")]));
        assert_eq!(
            split_copy_text_row(b"\\N\t").unwrap(),
            row(&[None, Some("")])
        );
        assert_eq!(
            split_copy_text_row(b"\t\t").unwrap(),
            row(&[Some(""), Some(""), Some("")])
        );
        // Lines PostgreSQL 15 printed for a (text, text, "char", bytea) table.
        assert_eq!(
            split_copy_text_row(
                "tab\\there\\nnl\\r\\\\ bs \\b\\fv \x01 é\t\\N\t\\\\303\t\\\\x00ff\n".as_bytes()
            )
            .unwrap(),
            row(&[
                Some("tab\there\nnl\r\\ bs \x08\x0cv \x01 é"),
                None,
                Some("\\303"),
                Some("\\x00ff")
            ])
        );
        assert_eq!(
            split_copy_text_row(b"\t\\\\N\t\\\\\t\\N\n").unwrap(),
            row(&[Some(""), Some("\\N"), Some("\\"), None])
        );
    }

    #[test]
    fn copy_escapes() {
        let one = |line: &[u8]| split_copy_text_row(line).unwrap().remove(0).unwrap();
        assert_eq!(one(b"\\b\\f\\n\\r\\t\\v\\\\"), "\x08\x0c\n\r\t\x0b\\");
        assert_eq!(one(b"\\101\\60\\0x"), "A0\0x");
        assert_eq!(one(b"\\1014"), "A4");
        assert_eq!(one(b"\\x41\\x4\\xg\\x"), "A\x04xgx");
        assert_eq!(one(b"\\x414"), "A4");
        assert_eq!(one(b"\\q\\N\\."), "qN.");
        assert_eq!(one(b"\\303\\251\\xc3\\xA9"), "éé");
        assert_eq!(one(b"a\\\tb"), "a\tb");
        assert_eq!(one(b"\\N\\N"), "NN");
        // Octal beyond \377 keeps the low 8 bits, as PostgreSQL does.
        assert_eq!(one(b"\\501"), "A");
        assert!(matches!(
            split_copy_text_row(b"ok\t\\303"),
            Err(ValueError::CopyUtf8 { column: 2, .. })
        ));
        assert!(matches!(
            split_copy_text_row(b"\xff"),
            Err(ValueError::CopyUtf8 { column: 1, .. })
        ));
        for bad in [&b"a\\"[..], b"a\nb", b"a\rb", b"a\n\n", b"\\.", b"\\.\n"] {
            assert!(
                matches!(split_copy_text_row(bad), Err(ValueError::CopyRow { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn calendar_constants() {
        assert_eq!(MIN_DATE, -2_440_588);
        assert_eq!(END_DATE, 2_145_042_906);
        assert_eq!(MIN_TIMESTAMP, -210_866_803_200_000_000);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(0, 3, 1), -719_468);
        assert!(is_leap(0) && is_leap(-4) && is_leap(2000) && !is_leap(1900) && !is_leap(-1));
    }

    // ---- Test-side PostgreSQL formatter, independent of the parser's arithmetic ----

    fn is_leap_year(year: i64) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// Calendar date of a day count since 1970-01-01, by walking years and months within
    /// one 400-year cycle (146 097 days) starting at 0000-01-01.
    fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let since_0000 = days + 719_528;
        let mut year = since_0000.div_euclid(146_097) * 400;
        let mut rest = since_0000.rem_euclid(146_097);
        loop {
            let length = if is_leap_year(year.rem_euclid(400)) {
                366
            } else {
                365
            };
            if rest < length {
                break;
            }
            rest -= length;
            year += 1;
        }
        let mut month = 1;
        loop {
            let length = match month {
                2 if is_leap_year(year.rem_euclid(400)) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            if rest < length {
                break;
            }
            rest -= length;
            month += 1;
        }
        (year, month, u32::try_from(rest + 1).unwrap())
    }

    fn format_ymd(year: i64, month: u32, day: u32) -> (String, bool) {
        if year <= 0 {
            (format!("{:04}-{month:02}-{day:02}", 1 - year), true)
        } else {
            (format!("{year:04}-{month:02}-{day:02}"), false)
        }
    }

    fn format_date(days: i64) -> String {
        let (year, month, day) = civil_from_days(days);
        let (ymd, bc) = format_ymd(year, month, day);
        if bc {
            format!("{ymd} BC")
        } else {
            ymd
        }
    }

    /// `HH:MM:SS` plus fractional seconds without trailing zeros, as PostgreSQL prints them.
    fn format_clock(micros: i64) -> String {
        let seconds = micros / 1_000_000;
        let fraction = micros % 1_000_000;
        let mut out = format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
        if fraction != 0 {
            out.push_str(format!(".{fraction:06}").trim_end_matches('0'));
        }
        out
    }

    fn format_offset(seconds: i64) -> String {
        let sign = if seconds < 0 { '-' } else { '+' };
        let abs = seconds.abs();
        let mut out = format!("{sign}{:02}", abs / 3600);
        if abs % 3600 != 0 {
            out.push_str(&format!(":{:02}", abs / 60 % 60));
        }
        if abs % 60 != 0 {
            out.push_str(&format!(":{:02}", abs % 60));
        }
        out
    }

    /// A timestamp as PostgreSQL prints it, local time `micros` and, for timestamptz, the
    /// offset that local time carries.
    fn format_timestamp(micros: i128, offset: Option<i64>) -> String {
        let day_micros = i128::from(USEC_PER_DAY);
        let days = i64::try_from(micros.div_euclid(day_micros)).unwrap();
        let clock = i64::try_from(micros.rem_euclid(day_micros)).unwrap();
        let (year, month, day) = civil_from_days(days);
        let (ymd, bc) = format_ymd(year, month, day);
        let offset = offset.map(format_offset).unwrap_or_default();
        let era = if bc { " BC" } else { "" };
        format!("{ymd} {}{offset}{era}", format_clock(clock))
    }

    /// A COPY text field as PostgreSQL writes it; `octal` also escapes every other byte as
    /// `\ooo`, and `hex` as `\xhh`, both of which COPY FROM reads.
    fn escape_copy_field(field: &Option<String>, style: u8) -> Vec<u8> {
        let Some(field) = field else {
            return b"\\N".to_vec();
        };
        let mut out = Vec::new();
        for &b in field.as_bytes() {
            match (b, style) {
                (b'\x08', _) => out.extend_from_slice(b"\\b"),
                (b'\x0c', _) => out.extend_from_slice(b"\\f"),
                (b'\n', _) => out.extend_from_slice(b"\\n"),
                (b'\r', _) => out.extend_from_slice(b"\\r"),
                (b'\t', _) => out.extend_from_slice(b"\\t"),
                (b'\x0b', _) => out.extend_from_slice(b"\\v"),
                (b'\\', _) => out.extend_from_slice(b"\\\\"),
                (_, 1) => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
                (_, 2) => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                _ => out.push(b),
            }
        }
        out
    }

    /// An array literal as PostgreSQL's array output writes it.
    fn format_text_array(items: &[Option<String>]) -> String {
        let items: Vec<String> = items
            .iter()
            .map(|item| match item {
                None => "NULL".to_owned(),
                Some(s)
                    if s.is_empty()
                        || s.eq_ignore_ascii_case("NULL")
                        || s.chars()
                            .any(|c| "{},\"\\".contains(c) || is_array_space(c)) =>
                {
                    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                }
                Some(s) => s.clone(),
            })
            .collect();
        format!("{{{}}}", items.join(","))
    }

    /// Day counts over PostgreSQL's whole date range, weighted towards BC and recent years.
    fn any_days() -> impl Strategy<Value = i64> {
        prop_oneof![
            MIN_DATE..END_DATE,
            MIN_DATE..days_from_civil(2100, 1, 1),
            Just(MIN_DATE),
            Just(END_DATE - 1),
        ]
    }

    /// Microseconds over the representable timestamp range, weighted like [`any_days`].
    fn any_timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![
            MIN_TIMESTAMP..i64::MAX,
            MIN_TIMESTAMP..days_from_civil(2100, 1, 1) * USEC_PER_DAY,
            Just(MIN_TIMESTAMP),
            Just(i64::MAX - 1),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            for oid in all_oids() {
                let _ = parse_text_value(oid, &s);
            }
        }

        #[test]
        fn value_shaped_text_never_panics(
            s in "[-0-9:.+ BCinfatyNULx{}\",\\\\\\[\\]=e]{0,40}"
        ) {
            for oid in all_oids() {
                let _ = parse_text_value(oid, &s);
            }
        }

        #[test]
        fn array_shaped_text_never_panics(
            s in "[ ]?\\{([-0-9a-zNUL\" {}\\\\]{0,6},){0,5}[-0-9a-zNUL\" {}\\\\]{0,6}\\}[ ]?"
        ) {
            for oid in all_oids() {
                let _ = parse_text_value(oid, &s);
            }
        }

        #[test]
        fn arbitrary_copy_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = split_copy_text_row(&line);
        }

        #[test]
        fn dates_round_trip(days in any_days()) {
            let text = format_date(days);
            prop_assert_eq!(parse_text_value(DATE, &text), Ok(Value::Date(i32::try_from(days).unwrap())), "{}", text);
        }

        #[test]
        fn times_round_trip(micros in 0..=USEC_PER_DAY) {
            let text = format_clock(micros);
            prop_assert_eq!(parse_text_value(TIME, &text), Ok(Value::Time(micros)), "{}", text);
        }

        #[test]
        fn timestamps_round_trip(micros in any_timestamp()) {
            let text = format_timestamp(i128::from(micros), None);
            prop_assert_eq!(parse_text_value(TIMESTAMP, &text), Ok(Value::Timestamp(micros)), "{}", text);
        }

        #[test]
        fn timestamptzs_round_trip(
            micros in any_timestamp(),
            offset in prop_oneof![Just(0i64), -57_599i64..=57_599, (-15i64..=15).prop_map(|h| h * 3600)],
        ) {
            let local = i128::from(micros) + i128::from(offset) * i128::from(USEC_PER_SEC);
            let text = format_timestamp(local, Some(offset));
            prop_assert_eq!(parse_text_value(TIMESTAMPTZ, &text), Ok(Value::TimestampTz(micros)), "{}", text);
        }

        #[test]
        fn copy_rows_round_trip(
            fields in proptest::collection::vec(proptest::option::of(any::<String>()), 1..6),
            style in 0u8..3,
            newline in any::<bool>(),
        ) {
            let mut line = Vec::new();
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(b'\t');
                }
                line.extend(escape_copy_field(field, style));
            }
            if newline {
                line.push(b'\n');
            }
            prop_assert_eq!(split_copy_text_row(&line), Ok(fields));
        }

        #[test]
        fn text_arrays_round_trip(
            items in proptest::collection::vec(proptest::option::of(any::<String>()), 0..6),
        ) {
            let literal = format_text_array(&items);
            let expected: Vec<Value> = items
                .into_iter()
                .map(|item| item.map_or(Value::Null, Value::Text))
                .collect();
            prop_assert_eq!(parse_text_value(1009, &literal), Ok(Value::Array(expected)), "{}", literal);
        }
    }
}
