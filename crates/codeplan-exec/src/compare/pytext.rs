//! Python 3.11 text and number semantics used by the APPS reference harness.
//!
//! The harness compares outputs with `str.strip()`, `str.split()`, `str.splitlines()`, `float()`
//! and `round(x, 3)`. Their Rust look-alikes (`str::trim`, `split_whitespace`, `lines`,
//! `parse::<f64>`) disagree with them on exactly the inputs that decide close verdicts (U+001C,
//! U+0085, `\r` alone, `1_000`, `１２`, ...), so this module reimplements them. Checked against a
//! real Python 3.11 interpreter by `tests/pytext_vs_python.rs`.

use std::borrow::Cow;

/// Python's `str.isspace()` set, the separators of `str.split()` and `str.strip()`.
pub fn is_py_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Line boundaries of Python's `str.splitlines()` (`\r\n` is handled by the caller as one).
pub fn is_py_linebreak(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Python's `s.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_whitespace)
}

/// Python's `s.split()` with no argument: runs of whitespace separate, no empty tokens.
pub fn py_split_whitespace(s: &str) -> Vec<&str> {
    s.split(is_py_whitespace)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Python's `s.splitlines()`: line breaks dropped, `\r\n` one break, no trailing empty line.
pub fn py_splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !is_py_linebreak(c) {
            continue;
        }
        lines.push(&s[start..i]);
        start = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(_, '\n')) = chars.peek() {
                chars.next();
                start += 1;
            }
        }
    }
    // Python keeps a final unterminated line but never adds an empty one after the last break.
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Code points of the digit zero of every non-ASCII run of Unicode decimal digits (category Nd).
///
/// Unicode 14.0, the database of Python 3.11 (`unicodedata.decimal(c) == 0`, c >= U+0080).
/// Unicode guarantees Nd digits come in contiguous runs 0..=9, so a zero is all we need.
const ND_ZEROS: [u32; 65] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a Unicode decimal digit (category Nd, ASCII included), as Python's `unicodedata.decimal`.
pub fn unicode_decimal(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    let cp = c as u32;
    let idx = ND_ZEROS.partition_point(|&z| z <= cp);
    let zero = *ND_ZEROS.get(idx.checked_sub(1)?)?;
    let d = cp - zero;
    (d < 10).then_some(d as u8)
}

/// C-locale `isspace` (`Py_ISSPACE`): the only whitespace `float()` strips after its Unicode pass.
fn is_c_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// Python's `float(s)` for a `str` argument; `None` where Python raises `ValueError`.
///
/// Follows CPython 3.11 `PyFloat_FromString` step by step:
/// 1. each non-ASCII whitespace becomes a space and each non-ASCII decimal digit its ASCII digit;
///    any other non-ASCII character (or DEL) fails. ASCII is left alone, so the separators
///    U+001C..U+001F, which `str.strip()` does strip, stay and make `float()` fail;
/// 2. underscores are allowed only between two digits (`1_000`, `1e1_0`, `１_２`);
/// 3. C whitespace (`\t\n\v\f\r` and space) is stripped from both ends;
/// 4. the rest must be entirely `[+-]` then `inf`/`infinity`/`nan` (any case) or a decimal with at
///    least one digit, optional `.`, optional exponent `[eE][+-]?digits`. Overflow gives ±inf.
pub fn py_float(s: &str) -> Option<f64> {
    let ascii: Cow<[u8]> = if s.bytes().all(|b| b < 0x7f) {
        Cow::Borrowed(s.as_bytes())
    } else {
        let mut buf = Vec::with_capacity(s.len());
        for c in s.chars() {
            let b = if (c as u32) < 0x7f {
                c as u8
            } else if is_py_whitespace(c) {
                b' '
            } else {
                b'0' + unicode_decimal(c)?
            };
            buf.push(b);
        }
        Cow::Owned(buf)
    };
    let cleaned: Cow<[u8]> = if ascii.contains(&b'_') {
        let mut out = Vec::with_capacity(ascii.len());
        let mut prev = 0u8;
        for &b in ascii.iter() {
            if b == b'_' {
                if !prev.is_ascii_digit() {
                    return None;
                }
            } else {
                if prev == b'_' && !b.is_ascii_digit() {
                    return None;
                }
                out.push(b);
            }
            prev = b;
        }
        if prev == b'_' {
            return None;
        }
        Cow::Owned(out)
    } else {
        ascii
    };
    let start = cleaned.iter().position(|&b| !is_c_space(b))?;
    let end = cleaned.iter().rposition(|&b| !is_c_space(b))? + 1;
    parse_float_literal(&cleaned[start..end])
}

/// Parses an ASCII float literal with nothing around it: the grammar of CPython's
/// `PyOS_string_to_double` (no whitespace, no underscores, no hex).
pub(crate) fn parse_float_literal(b: &[u8]) -> Option<f64> {
    let (negative, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let signed = |v: f64| if negative { -v } else { v };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(signed(f64::INFINITY));
    }
    if body.eq_ignore_ascii_case(b"nan") {
        // CPython keeps the sign of `-nan` in the sign bit; so do we.
        return Some(signed(f64::NAN));
    }
    let mut i = 0;
    let digits_from = |i: &mut usize| {
        let s = *i;
        while body.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    let mut mantissa_digits = digits_from(&mut i);
    if body.get(i) == Some(&b'.') {
        i += 1;
        mantissa_digits += digits_from(&mut i);
    }
    if mantissa_digits == 0 {
        return None;
    }
    if matches!(body.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits_from(&mut i) == 0 {
            return None;
        }
    }
    if i != body.len() {
        return None;
    }
    // The grammar is now a subset of what Rust's correctly rounded parser accepts.
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Python's `round(x, ndigits)` for a float: exact value rounded half to even, NaN/inf unchanged.
///
/// For `ndigits >= 0` this relies on Rust's fixed-precision formatting, which is exact on the
/// binary value and rounds exact ties to even (`{:.3}` of 0.0625 is `0.062`; pinned by tests
/// here and checked against Python by the differential test), followed by a correctly rounded
/// parse, which is what CPython's `double_round` does with `dtoa`. Where Python raises
/// `OverflowError` (only possible for negative `ndigits`, e.g. `round(1.7e308, -308)`) this
/// returns ±inf.
pub fn py_round(x: f64, ndigits: i32) -> f64 {
    // Same cut-offs as CPython: beyond them the answer is x itself or a signed zero.
    const NDIGITS_MAX: i32 = 323;
    const NDIGITS_MIN: i32 = -308;
    if !x.is_finite() || x == 0.0 || ndigits > NDIGITS_MAX {
        return x;
    }
    if ndigits < NDIGITS_MIN {
        return 0.0 * x;
    }
    if ndigits >= 0 {
        // Every double of magnitude >= 2^52 is an integer, so it rounds to itself; this also
        // keeps the formatted string short.
        if x.abs() >= 4_503_599_627_370_496.0 {
            return x;
        }
        let text = format!("{:.*}", ndigits as usize, x);
        return text.parse().unwrap_or(x);
    }
    round_to_power_of_ten(x, ndigits.unsigned_abs() as usize)
}

/// `round(x, -m)` for m >= 1: half-to-even at the 10^m place, on the exact decimal digits of x.
fn round_to_power_of_ten(x: f64, m: usize) -> f64 {
    let magnitude = x.abs();
    // `{:.0}` of an integral double prints its exact decimal digits.
    let digits = format!("{:.0}", magnitude.trunc()).into_bytes();
    let fraction_nonzero = magnitude.fract() != 0.0;
    let zero = 0.0f64.copysign(x);
    if m > digits.len() {
        // |x| < 10^len <= 10^(m-1) < 10^m / 2: rounds to a zero of x's sign.
        return zero;
    }
    let split = digits.len() - m;
    let mut kept = digits[..split].to_vec();
    let first_dropped = digits[split];
    let rest_nonzero = digits[split + 1..].iter().any(|&d| d != b'0') || fraction_nonzero;
    let last_kept_odd = kept.last().is_some_and(|&d| (d - b'0') % 2 == 1);
    let round_up =
        first_dropped > b'5' || (first_dropped == b'5' && (rest_nonzero || last_kept_odd));
    if round_up {
        let mut carry = true;
        for d in kept.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                carry = false;
                break;
            }
        }
        if carry {
            kept.insert(0, b'1');
        }
    }
    if kept.is_empty() {
        return zero;
    }
    kept.extend(std::iter::repeat_n(b'0', m));
    let value: f64 = std::str::from_utf8(&kept)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::INFINITY);
    value.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_set_is_pythons() {
        let expected: Vec<u32> = vec![
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ];
        let got: Vec<u32> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_whitespace(c))
            .map(|c| c as u32)
            .collect();
        assert_eq!(got, expected);
        // Not whitespace in Python although Rust's char::is_whitespace disagrees on some.
        for c in ['\u{180e}', '\u{200b}', '\u{feff}', 'a', '\0'] {
            assert!(!is_py_whitespace(c), "{c:?}");
        }
    }

    #[test]
    fn strip_and_split() {
        assert_eq!(py_strip("\x1c a b \u{a0}\u{3000}\u{85}"), "a b");
        assert_eq!(py_strip("\u{200b}x\u{200b}"), "\u{200b}x\u{200b}");
        assert_eq!(py_strip(""), "");
        assert_eq!(py_strip(" \t\n"), "");
        assert_eq!(
            py_split_whitespace("  a\x1fb\u{2028}c  "),
            vec!["a", "b", "c"]
        );
        assert_eq!(py_split_whitespace(""), Vec::<&str>::new());
        assert_eq!(py_split_whitespace(" \u{3000} "), Vec::<&str>::new());
        assert_eq!(py_split_whitespace("a\u{200b}b"), vec!["a\u{200b}b"]);
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(py_splitlines("\n"), vec![""]);
        assert_eq!(py_splitlines("a"), vec!["a"]);
        assert_eq!(py_splitlines("a\n"), vec!["a"]);
        assert_eq!(py_splitlines("a\n\n"), vec!["a", ""]);
        assert_eq!(py_splitlines("a\r\nb\rc\n"), vec!["a", "b", "c"]);
        assert_eq!(py_splitlines("a\r\r\nb"), vec!["a", "", "b"]);
        assert_eq!(py_splitlines("a\n\rb"), vec!["a", "", "b"]);
        assert_eq!(
            py_splitlines("1\x0b2\x0c3\x1c4\x1d5\x1e6\u{85}7\u{2028}8\u{2029}9\x1f10"),
            vec!["1", "2", "3", "4", "5", "6", "7", "8", "9\x1f10"]
        );
        // U+00A0 and tabs are whitespace but not line breaks.
        assert_eq!(py_splitlines("a\u{a0}\tb"), vec!["a\u{a0}\tb"]);
    }

    #[test]
    fn unicode_digits() {
        assert_eq!(unicode_decimal('7'), Some(7));
        assert_eq!(unicode_decimal('\u{0669}'), Some(9)); // ARABIC-INDIC NINE
        assert_eq!(unicode_decimal('\u{FF11}'), Some(1)); // FULLWIDTH ONE
        assert_eq!(unicode_decimal('\u{1D7FF}'), Some(9)); // MATHEMATICAL MONOSPACE NINE
        assert_eq!(unicode_decimal('\u{00B2}'), None); // SUPERSCRIPT TWO is No, not Nd
        assert_eq!(unicode_decimal('\u{2167}'), None); // ROMAN NUMERAL EIGHT is Nl
        assert_eq!(unicode_decimal('\u{19DA}'), None); // NEW TAI LUE THAM DIGIT ONE is No
        assert_eq!(unicode_decimal('a'), None);
        assert_eq!(unicode_decimal('\u{065F}'), None);
        assert_eq!(unicode_decimal('\u{066A}'), None);
    }

    #[test]
    fn float_accepts_what_python_accepts() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            (" 1 ", 1.0),
            ("\u{a0}1\u{3000}", 1.0),
            ("\u{85}1", 1.0),
            ("\x0b1\x0c", 1.0),
            ("３.", 3.0),
            ("3.", 3.0),
            (".5", 0.5),
            ("-.5e-1", -0.05),
            ("+1E+2", 100.0),
            ("1_000", 1000.0),
            ("1_0.5_5", 10.55),
            ("1e1_0", 1e10),
            ("１２", 12.0),
            ("١٢", 12.0),
            ("１_２", 12.0),
            ("\u{1D7CE}", 0.0),
            ("1e400", f64::INFINITY),
            ("-1e400", f64::NEG_INFINITY),
            ("1e-400", 0.0),
            ("0.1", 0.1),
            ("000001.5", 1.5),
            ("2.2250738585072011e-308", 2.225_073_858_507_201e-308),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("+iNfInItY", f64::INFINITY),
        ];
        for &(s, v) in cases {
            assert_eq!(py_float(s), Some(v), "{s:?}");
        }
        for s in ["nan", "-NaN", "+nAn", " nan\n"] {
            assert!(py_float(s).unwrap().is_nan(), "{s:?}");
        }
        assert!(py_float("-nan").unwrap().is_sign_negative());
        assert!(py_float("-0").unwrap().is_sign_negative());
    }

    #[test]
    fn float_rejects_what_python_rejects() {
        for s in [
            "",
            " ",
            "\u{3000}",
            ".",
            "e5",
            ".e5",
            "1e",
            "1e+",
            "1e+-5",
            "++1",
            "+-1",
            "0x10",
            "1__0",
            "_1",
            "1_",
            "1_e5",
            "1_.5",
            "1._5",
            "1e_5",
            "inf_",
            "infin",
            "infinityy",
            "nan(1)",
            "in f",
            "1 2",
            "1\u{a0}2",
            "1,5",
            "1\x1c",
            "\x1c1",
            "1\x1f",
            "1\x7f",
            "1\0",
            "\u{b2}",
            "1d5",
            "1f",
            "0b1",
            "１２a",
            "--1",
            "1.2.3",
            "−1", // U+2212 MINUS SIGN
        ] {
            assert_eq!(py_float(s), None, "{s:?}");
        }
    }

    #[test]
    fn rust_formatting_rounds_exact_ties_to_even() {
        // The property py_round relies on: every exact tie k/2^j at the rounding digit goes to even.
        for (x, n, want) in [
            (0.0625, 3, "0.062"),
            (0.1875, 3, "0.188"),
            (0.125, 2, "0.12"),
            (0.375, 2, "0.38"),
            (2.5, 0, "2"),
            (0.5, 0, "0"),
            (1.5, 0, "2"),
            (-2.5, 0, "-2"),
            (-0.0625, 3, "-0.062"),
        ] {
            assert_eq!(format!("{:.*}", n, x), want);
        }
        // Exhaustively: every multiple of 1/2^14 below 8, rounded to 3 places, against an exact
        // integer computation of round-half-even.
        for k in 0..(8u64 << 14) {
            let x = k as f64 / 16384.0;
            // x * 1000 = k * 1000 / 16384 exactly as a rational.
            let num = k * 1000;
            let (q, r) = (num / 16384, num % 16384);
            let rounded = if r * 2 > 16384 || (r * 2 == 16384 && q % 2 == 1) {
                q + 1
            } else {
                q
            };
            assert_eq!(py_round(x, 3), rounded as f64 / 1000.0, "k={k}");
        }
    }

    #[test]
    fn round_matches_python_examples() {
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(0.0625, 3), 0.062);
        assert_eq!(py_round(0.3335, 3), 0.334);
        assert_eq!(py_round(0.0005, 3), 0.001); // 0.0005 is slightly above the tie in binary
        assert_eq!(py_round(1.0005, 3), 1.0); // ...and 1.0005 slightly below
        assert_eq!(py_round(1.23456e10, 3), 1.23456e10);
        assert_eq!(py_round(9007199254740993.0, 3), 9007199254740993.0);
        assert!(py_round(-0.0001, 3).is_sign_negative());
        assert_eq!(py_round(-0.0001, 3), 0.0);
        assert!(py_round(-0.0, 3).is_sign_negative());
        assert!(py_round(f64::NAN, 3).is_nan());
        assert_eq!(py_round(f64::INFINITY, 3), f64::INFINITY);
        assert_eq!(py_round(f64::NEG_INFINITY, -2), f64::NEG_INFINITY);
        assert_eq!(py_round(5e-324, 3), 0.0);
        assert_eq!(py_round(5e-324, 400), 5e-324);
        assert_eq!(py_round(123.456, -400), 0.0);
        assert_eq!(py_round(0.5, 0), 0.0);
        assert_eq!(py_round(1.5, 0), 2.0);
        assert_eq!(py_round(f64::MAX, 3), f64::MAX);
    }

    #[test]
    fn round_negative_ndigits() {
        assert_eq!(py_round(1234.5, -2), 1200.0);
        assert_eq!(py_round(1250.0, -2), 1200.0);
        assert_eq!(py_round(1350.0, -2), 1400.0);
        assert_eq!(py_round(1250.000001, -2), 1300.0);
        assert_eq!(py_round(-1350.0, -2), -1400.0);
        assert_eq!(py_round(9999.0, -2), 10000.0);
        assert_eq!(py_round(50.0, -2), 0.0);
        assert_eq!(py_round(50.5, -2), 100.0);
        assert_eq!(py_round(150.0, -2), 200.0);
        assert_eq!(py_round(49.9, -1), 50.0);
        assert_eq!(py_round(4.0, -5), 0.0);
        assert!(py_round(-4.0, -5).is_sign_negative());
        assert!(py_round(-40.0, -2).is_sign_negative());
        assert_eq!(py_round(1e22, -21), 1e22);
        assert_eq!(py_round(f64::MAX, -308), f64::INFINITY); // Python: OverflowError
        assert_eq!(py_round(1.5e308, -308), f64::INFINITY); // Python: OverflowError
        assert_eq!(py_round(1.4e308, -308), 1e308);
    }
}
