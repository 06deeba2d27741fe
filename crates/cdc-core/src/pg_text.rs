//! A [`Value`] in PostgreSQL's text output form: the inverse of capture's text decoder,
//! under the session settings capture reads with (`DateStyle = 'ISO, MDY'`,
//! `TimeZone = 'UTC'`, `extra_float_digits = 3`, `bytea_output = hex`).
//!
//! PostgreSQL reads every text this module writes back to the same value, so a stage that
//! hands values to PostgreSQL as text parameters (the modeler's warehouse) loses nothing.
//! Floats print the shortest digits that read back exactly, as PostgreSQL 12 and later do,
//! though not always in the same notation (`1e+20` and `100000000000000000000` are one
//! value); everything else prints as PostgreSQL prints it.

use std::fmt::Write;

use crate::Value;

const USEC_PER_SEC: i64 = 1_000_000;
const USEC_PER_DAY: i64 = 86_400 * USEC_PER_SEC;

/// `value` as PostgreSQL prints it; `None` for SQL NULL and for an unchanged TOAST value
/// (which has no text).
pub fn pg_text(value: &Value) -> Option<String> {
    let mut out = String::new();
    write_value(&mut out, value).then_some(out)
}

/// Appends `value`'s text to `out`; `false` when it has none.
fn write_value(out: &mut String, value: &Value) -> bool {
    match value {
        Value::Null | Value::UnchangedToast => return false,
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Int16(n) => push(out, n),
        Value::Int32(n) => push(out, n),
        Value::Int64(n) => push(out, n),
        Value::Float32(x) => write_float(out, f64::from(*x), x.is_finite(), 6, &format!("{x:e}")),
        Value::Float64(x) => write_float(out, *x, x.is_finite(), 15, &format!("{x:e}")),
        Value::Numeric(s) | Value::Text(s) | Value::Json(s) | Value::Other(s) => out.push_str(s),
        Value::Bytes(bytes) => {
            out.push_str("\\x");
            for b in bytes {
                push(out, format_args!("{b:02x}"));
            }
        }
        Value::Date(days) => write_date(out, *days),
        Value::Time(us) => write_clock(out, *us),
        Value::Timestamp(us) => write_timestamp(out, *us, ""),
        Value::TimestampTz(us) => write_timestamp(out, *us, "+00"),
        Value::Uuid(b) => {
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                push(out, format_args!("{byte:02x}"));
            }
        }
        Value::Array(elements) => write_array(out, elements),
    }
    true
}

fn push(out: &mut String, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

/// PostgreSQL's shortest-exact float output: exponent notation below 1e-4 and from
/// 10^`digits` up (`digits` is `FLT_DIG` or `DBL_DIG`), plain digits between.
fn write_float(out: &mut String, x: f64, finite: bool, digits: i32, scientific: &str) {
    if !finite {
        out.push_str(if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
        return;
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let significant: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if significant == "0" {
        out.push('0');
    } else if exponent < -4 || exponent >= digits {
        out.push_str(mantissa);
        push(
            out,
            format_args!(
                "e{}{:02}",
                if exponent < 0 { '-' } else { '+' },
                exponent.abs()
            ),
        );
    } else if exponent < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        out.push_str(&significant);
    } else {
        let whole = (exponent + 1) as usize;
        if significant.len() <= whole {
            out.push_str(&significant);
            out.extend(std::iter::repeat_n('0', whole - significant.len()));
        } else {
            out.push_str(&significant[..whole]);
            out.push('.');
            out.push_str(&significant[whole..]);
        }
    }
}

/// `(year, month, day)` of a day count since 1970-01-01, proleptic Gregorian with
/// astronomical years (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`, and whether the year is BC (printed as ` BC` after the whole value).
fn write_ymd(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let year = if bc { 1 - year } else { year };
    push(out, format_args!("{year:04}-{month:02}-{day:02}"));
    bc
}

fn write_date(out: &mut String, days: i32) {
    match days {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        _ => {
            if write_ymd(out, i64::from(days)) {
                out.push_str(" BC");
            }
        }
    }
}

/// `HH:MM:SS` and, when not whole, the fraction without trailing zeros.
fn write_clock(out: &mut String, us: i64) {
    let secs = us.div_euclid(USEC_PER_SEC);
    let fraction = us.rem_euclid(USEC_PER_SEC);
    push(
        out,
        format_args!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn write_timestamp(out: &mut String, us: i64, offset: &str) {
    match us {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        _ => {
            let bc = write_ymd(out, us.div_euclid(USEC_PER_DAY));
            out.push(' ');
            write_clock(out, us.rem_euclid(USEC_PER_DAY));
            out.push_str(offset);
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// `{a,b,NULL}`, quoting an element as `array_out` does: when it is empty, is `NULL` in
/// any case, or holds a brace, a quote, a comma, a backslash or white space.
fn write_array(out: &mut String, elements: &[Value]) {
    out.push('{');
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut text = String::new();
        if !write_value(&mut text, element) {
            out.push_str("NULL");
            continue;
        }
        let quote = text.is_empty()
            || text.eq_ignore_ascii_case("NULL")
            || text
                .chars()
                .any(|c| matches!(c, '{' | '}' | '"' | ',' | '\\') || c.is_ascii_whitespace());
        if quote {
            out.push('"');
            for c in text.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    out.push('}');
}

/// A decimal's unscaled `value` at `scale` as PostgreSQL prints a `numeric(p,scale)`
/// (a negative scale rounds to tens, hundreds, …: `7` at `-2` is `700`).
pub fn decimal_text(value: i128, scale: i32) -> String {
    if scale <= 0 {
        let digits = value.unsigned_abs().to_string();
        if value == 0 {
            return digits;
        }
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return format!("{}{digits}{zeros}", if value < 0 { "-" } else { "" });
    }
    let scale = scale as usize;
    let digits = value.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    format!("{}{whole}.{fraction}", if value < 0 { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: Value) -> String {
        pg_text(&value).unwrap_or_else(|| "<none>".to_owned())
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal_text(1234, 2), "12.34");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(decimal_text(7, -2), "700");
        assert_eq!(decimal_text(-7, -2), "-700");
        assert_eq!(decimal_text(0, -2), "0");
        assert_eq!(decimal_text(i128::MAX, 0), i128::MAX.to_string());
    }

    #[test]
    fn scalars_print_as_postgres_prints_them() {
        assert_eq!(text(Value::Bool(true)), "t");
        assert_eq!(text(Value::Int64(-9)), "-9");
        assert_eq!(text(Value::Bytes(vec![0, 0xab])), "\\x00ab");
        assert_eq!(
            text(Value::Uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ])),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(pg_text(&Value::Null), None);
        assert_eq!(pg_text(&Value::UnchangedToast), None);
    }

    #[test]
    fn floats_use_shortest_exact_digits() {
        assert_eq!(text(Value::Float64(0.1)), "0.1");
        assert_eq!(text(Value::Float64(-2.5)), "-2.5");
        assert_eq!(text(Value::Float64(1e20)), "1e+20");
        assert_eq!(text(Value::Float64(123_456.0)), "123456");
        assert_eq!(text(Value::Float64(0.0001)), "0.0001");
        assert_eq!(text(Value::Float64(0.00001)), "1e-05");
        assert_eq!(text(Value::Float64(1.5e300)), "1.5e+300");
        assert_eq!(text(Value::Float64(-0.0)), "-0");
        assert_eq!(text(Value::Float32(1.1)), "1.1");
        assert_eq!(text(Value::Float32(1_234_567.0)), "1.234567e+06");
        assert_eq!(text(Value::Float64(f64::NAN)), "NaN");
        assert_eq!(text(Value::Float32(f32::NEG_INFINITY)), "-Infinity");
    }

    #[test]
    fn dates_and_times_keep_bc_and_infinity() {
        assert_eq!(text(Value::Date(0)), "1970-01-01");
        assert_eq!(text(Value::Date(-719_528)), "0001-01-01 BC", "year 0");
        assert_eq!(text(Value::Date(-719_529)), "0002-12-31 BC");
        assert_eq!(text(Value::Date(i32::MAX)), "infinity");
        assert_eq!(text(Value::Time(86_400 * USEC_PER_SEC)), "24:00:00");
        assert_eq!(text(Value::Time(3_723_500_000)), "01:02:03.5");
        assert_eq!(text(Value::Timestamp(-1)), "1969-12-31 23:59:59.999999");
        assert_eq!(text(Value::TimestampTz(0)), "1970-01-01 00:00:00+00");
        assert_eq!(
            text(Value::TimestampTz(-62_198_755_200 * USEC_PER_SEC)),
            "0002-01-01 00:00:00+00 BC"
        );
        assert_eq!(text(Value::TimestampTz(i64::MIN)), "-infinity");
    }

    #[test]
    fn arrays_quote_what_array_out_quotes() {
        let array = Value::Array(vec![
            Value::Text("a".into()),
            Value::Null,
            Value::Text(String::new()),
            Value::Text("null".into()),
            Value::Text("x y".into()),
            Value::Text("q\"\\".into()),
            Value::Text("{,}".into()),
        ]);
        assert_eq!(text(array), r#"{a,NULL,"","null","x y","q\"\\","{,}"}"#);
        assert_eq!(
            text(Value::Array(vec![Value::Bytes(vec![1])])),
            r#"{"\\x01"}"#
        );
        assert_eq!(text(Value::Array(vec![])), "{}");
    }
}
