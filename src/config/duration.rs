//! Go-compatible durations: `time.ParseDuration` and `Duration.String()`.
//!
//! Every duration in a Consul config file, flag or API body is written in Go's
//! syntax, so we parse and print exactly the way Go does (same accepted inputs,
//! same rounding, same error texts).

use std::time::Duration;

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Largest magnitude Go accepts: 1<<63 nanoseconds (only valid when negative).
const MAX_MAGNITUDE: u64 = 1 << 63;

fn invalid(orig: &str) -> String {
    format!("time: invalid duration \"{orig}\"")
}

/// Parses like Go's `time.ParseDuration` and returns signed nanoseconds.
///
/// Accepts `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units ns, us, µs, μs, ms, s,
/// m and h; a bare `0` (optionally signed) is the only unit-less value allowed.
pub fn parse_go_duration_nanos(orig: &str) -> Result<i64, String> {
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid(orig));
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid(orig));
        }
        // Integer part.
        let before = s.len();
        let (int_part, rest) = leading_int(s).ok_or_else(|| invalid(orig))?;
        s = rest;
        let had_int = before != s.len();
        // Optional fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_frac = false;
        if let Some(rest) = s.strip_prefix('.') {
            let before = rest.len();
            let (f, sc, rest) = leading_fraction(rest);
            frac = f;
            scale = sc;
            had_frac = before != rest.len();
            s = rest;
        }
        if !had_int && !had_frac {
            // "." or "-.": no digits at all.
            return Err(invalid(orig));
        }
        // Unit: everything up to the next digit or dot.
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let (unit_str, rest) = s.split_at(unit_len);
        s = rest;
        let unit = match unit_str {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO,
            "ms" => NANOS_PER_MILLI,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit_str}\" in duration \"{orig}\""
                ));
            }
        };
        if int_part > MAX_MAGNITUDE / unit {
            return Err(invalid(orig));
        }
        let mut v = int_part * unit;
        if frac > 0 {
            // Go computes the fractional contribution in float64 and truncates.
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > MAX_MAGNITUDE {
                return Err(invalid(orig));
            }
        }
        total = total.checked_add(v).ok_or_else(|| invalid(orig))?;
        if total > MAX_MAGNITUDE {
            return Err(invalid(orig));
        }
    }
    if neg {
        // total <= 1<<63, so the negation always fits.
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > MAX_MAGNITUDE - 1 {
        return Err(invalid(orig));
    }
    Ok(total as i64)
}

/// Consumes leading ASCII digits; `None` on overflow past 1<<63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let bytes = s.as_bytes();
    let mut x: u64 = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        if x > MAX_MAGNITUDE / 10 {
            return None;
        }
        x = x * 10 + u64::from(bytes[i] - b'0');
        if x > MAX_MAGNITUDE {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Consumes leading fraction digits; digits past the precision limit are
/// consumed but ignored, as in Go.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let bytes = s.as_bytes();
    let mut x: u64 = 0;
    let mut scale = 1.0;
    let mut overflow = false;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        if !overflow {
            if x > (MAX_MAGNITUDE - 1) / 10 {
                overflow = true;
            } else {
                let y = x * 10 + u64::from(bytes[i] - b'0');
                if y > MAX_MAGNITUDE {
                    overflow = true;
                } else {
                    x = y;
                    scale *= 10.0;
                }
            }
        }
        i += 1;
    }
    (x, scale, &s[i..])
}

/// Parses a Go duration string into a `std::time::Duration`.
///
/// Negative values are valid Go durations (`"-1s"`) but have no
/// `std::time::Duration` form; they come back as zero, which is how Consul
/// treats non-positive timeouts and intervals. Use [`parse_go_duration_nanos`]
/// when the sign matters.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let nanos = parse_go_duration_nanos(s)?;
    Ok(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
}

/// Formats like Go's `time.Duration.String()`: "0s", "500ms", "1.5s",
/// "1m30s", "1h0m0s". Durations beyond Go's range (~292 years) saturate.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    format_go_nanos(nanos, false)
}

fn format_go_nanos(mut u: u64, neg: bool) -> String {
    // Built right to left, as Go does.
    let mut out: Vec<char> = Vec::with_capacity(32);
    if u < NANOS_PER_SEC {
        if u == 0 {
            return "0s".to_string();
        }
        out.push('s');
        let prec = if u < NANOS_PER_MICRO {
            out.push('n');
            0
        } else if u < NANOS_PER_MILLI {
            out.push('\u{b5}');
            3
        } else {
            out.push('m');
            6
        };
        u = push_frac(&mut out, u, prec);
        push_int(&mut out, u);
    } else {
        out.push('s');
        u = push_frac(&mut out, u, 9);
        push_int(&mut out, u % 60);
        u /= 60;
        if u > 0 {
            out.push('m');
            push_int(&mut out, u % 60);
            u /= 60;
            if u > 0 {
                out.push('h');
                push_int(&mut out, u);
            }
        }
    }
    if neg {
        out.push('-');
    }
    out.iter().rev().collect()
}

/// Pushes (reversed) the fraction of `v / 10^prec` without trailing zeros and
/// returns the integer part.
fn push_frac(out: &mut Vec<char>, mut v: u64, prec: u32) -> u64 {
    let mut printed = false;
    for _ in 0..prec {
        let digit = v % 10;
        printed = printed || digit != 0;
        if printed {
            out.push(char::from(b'0' + digit as u8));
        }
        v /= 10;
    }
    if printed {
        out.push('.');
    }
    v
}

/// Pushes (reversed) the decimal digits of `v`.
fn push_int(out: &mut Vec<char>, mut v: u64) {
    if v == 0 {
        out.push('0');
        return;
    }
    while v > 0 {
        out.push(char::from(b'0' + (v % 10) as u8));
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5 * NANOS_PER_SEC as i64),
            ("30s", 30 * NANOS_PER_SEC as i64),
            ("1478s", 1478 * NANOS_PER_SEC as i64),
            ("-5s", -5 * NANOS_PER_SEC as i64),
            ("+5s", 5 * NANOS_PER_SEC as i64),
            ("-1s", -(NANOS_PER_SEC as i64)),
            ("5.0s", 5 * NANOS_PER_SEC as i64),
            ("5.6s", 5_600_000_000),
            ("5.s", 5 * NANOS_PER_SEC as i64),
            (".5s", 500_000_000),
            ("1.0s", NANOS_PER_SEC as i64),
            ("1.00s", NANOS_PER_SEC as i64),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("300ms", 300_000_000),
            ("14s", 14 * NANOS_PER_SEC as i64),
            ("15m", 15 * 60 * NANOS_PER_SEC as i64),
            ("16h", 16 * 3600 * NANOS_PER_SEC as i64),
            ("1.5h", 5400 * NANOS_PER_SEC as i64),
            ("2h45m", (2 * 3600 + 45 * 60) * NANOS_PER_SEC as i64),
            ("3h30m", 12_600 * NANOS_PER_SEC as i64),
            ("10.5s4m", (4 * 60) * NANOS_PER_SEC as i64 + 10_500_000_000),
            ("-2m3.4s", -(123_400_000_000)),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * 60 * NANOS_PER_SEC as i64),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("0.100000000000000000000h", 6 * 60 * NANOS_PER_SEC as i64),
            ("0.830103483285477580700h", 2_988_372_539_827),
            ("87600h", 87_600 * 3600 * NANOS_PER_SEC as i64),
        ];
        for (input, want) in ok {
            assert_eq!(parse_go_duration_nanos(input), Ok(*want), "input {input:?}");
        }
        let bad = [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{85}\u{85}",
            "1.5",
            "10",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775808ns",
            "-9223372036854775809ns",
            "5 s",
            " 5s",
        ];
        for input in bad {
            assert!(parse_go_duration_nanos(input).is_err(), "input {input:?}");
        }
    }

    #[test]
    fn error_texts_match_go() {
        assert_eq!(
            parse_go_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_go_duration("3x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"3x\""
        );
        assert_eq!(
            parse_go_duration("nope").unwrap_err(),
            "time: invalid duration \"nope\""
        );
    }

    #[test]
    fn std_duration_form() {
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("-1s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn format_table() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (3_300_000_000, "3.3s"),
            (15 * NANOS_PER_SEC, "15s"),
            (90 * NANOS_PER_SEC, "1m30s"),
            (4 * 60 * NANOS_PER_SEC + 5_000_000_000, "4m5s"),
            (4 * 60 * NANOS_PER_SEC + 5_001_000_000, "4m5.001s"),
            (3600 * NANOS_PER_SEC, "1h0m0s"),
            (
                5 * 3600 * NANOS_PER_SEC + 6 * 60 * NANOS_PER_SEC + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60 * NANOS_PER_SEC + 1, "8m0.000000001s"),
            (87_600 * 3600 * NANOS_PER_SEC, "87600h0m0s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(format_go_duration(Duration::from_nanos(*nanos)), *want);
        }
        assert_eq!(format_go_nanos(1_000_000_000, true), "-1s");
        assert_eq!(
            format_go_nanos(i64::MIN.unsigned_abs(), true),
            "-2562047h47m16.854775808s"
        );
    }

    #[test]
    fn round_trip() {
        for s in ["15s", "1m30s", "1h0m0s", "500ms", "1.5s", "72h0m0s", "10ms"] {
            let d = parse_go_duration(s).expect("valid");
            assert_eq!(format_go_duration(d), s);
        }
    }
}
