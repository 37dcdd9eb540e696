//! The token comparison of `strict` mode (spec §8): ordered, exact, with a float tolerance only
//! where the expected token is written as a float.
//!
//! Rule, for raw stdout bytes `output` and expected bytes `expected`:
//! 1. Split both on ASCII whitespace (space, `\t`, `\n`, `\v`, `\f`, `\r`; C `isspace`) and drop
//!    empty tokens. So line structure and the amount of whitespace are ignored, but token order
//!    and count are not.
//! 2. The token lists must have the same length, and each output token must match the expected
//!    token at the same position.
//! 3. A pair matches if the bytes are equal. Otherwise, if the expected token is a *float literal*
//!    and the output token parses as a float, they match when `a == b` (so equal infinities match)
//!    or, for a finite `b`, `|a - b| <= float_tol * max(1, |b|)` (`b` expected, `a` output: absolute below 1,
//!    relative above). NaN never matches numerically; `nan` vs `nan` matches by bytes.
//! 4. A float literal is `[+-]?` then digits with a `.` and/or an exponent `[eE][+-]?digits`
//!    (`1.`, `.5`, `2e3`, `-0.0`) or `inf`/`infinity`/`nan` in any case. A plain integer such as
//!    `3` or `-7` is not a float literal, so integers must match exactly (`3` vs `3.0` fails).
//!    No underscores, hex or non-ASCII digits: Python's `float()` leniency is not copied here.
//!
//! Non-UTF-8 bytes are compared as bytes; they can never be part of a float.

use super::pytext::parse_float_literal;

/// C `isspace` on a byte: the token separators of strict mode.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// Whitespace-separated tokens of `bytes`, empty tokens dropped.
pub fn tokens(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| is_ascii_space(b))
        .filter(|t| !t.is_empty())
}

/// The value of `token` if it is a float literal (with a `.`, an exponent, or inf/nan); integers are not.
pub fn float_literal(token: &[u8]) -> Option<f64> {
    let digits = token
        .strip_prefix(b"+")
        .or_else(|| token.strip_prefix(b"-"))
        .unwrap_or(token);
    let looks_float = token.iter().any(|&b| matches!(b, b'.' | b'e' | b'E'))
        || digits.eq_ignore_ascii_case(b"inf")
        || digits.eq_ignore_ascii_case(b"infinity")
        || digits.eq_ignore_ascii_case(b"nan");
    if !looks_float {
        return None;
    }
    parse_float_literal(token)
}

/// Whether one output token is accepted for one expected token (rule 3 of the module doc).
pub fn token_matches(output: &[u8], expected: &[u8], float_tol: f64) -> bool {
    if output == expected {
        return true;
    }
    let Some(b) = float_literal(expected) else {
        return false;
    };
    let Some(a) = parse_float_literal(output) else {
        return false;
    };
    // An infinite expected value only matches itself: inf <= tol * inf would accept anything.
    a == b || (b.is_finite() && (a - b).abs() <= float_tol * b.abs().max(1.0))
}

/// Strict-mode verdict: same tokens in the same order, floats within `float_tol` (module doc).
pub fn tokens_match(output: &[u8], expected: &[u8], float_tol: f64) -> bool {
    let mut out = tokens(output);
    let mut exp = tokens(expected);
    loop {
        match (out.next(), exp.next()) {
            (None, None) => return true,
            (Some(o), Some(e)) if token_matches(o, e, float_tol) => {}
            _ => return false,
        }
    }
}

/// Strict equality of a returned value (as JSON) with the expected one.
///
/// Lists, objects, text, booleans and null compare exactly (a boolean never equals a number);
/// an expected integer needs the same number; where a float is expected a number within
/// `float_tol * max(1, |expected|)` matches. As in APPS, an expected one-element list also
/// accepts its element.
pub fn values_match(
    output: &serde_json::Value,
    expected: &serde_json::Value,
    float_tol: f64,
) -> bool {
    value_eq(output, expected, float_tol)
        || matches!(expected, serde_json::Value::Array(e) if e.len() == 1 && value_eq(output, &e[0], float_tol))
}

fn value_eq(out: &serde_json::Value, expected: &serde_json::Value, tol: f64) -> bool {
    use serde_json::Value as V;
    match (out, expected) {
        (V::Number(a), V::Number(b)) if b.is_f64() => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => {
                a == b || (b.is_finite() && (a - b).abs() <= tol * b.abs().max(1.0))
            }
            _ => false,
        },
        (V::Number(a), V::Number(b)) => match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        (V::Array(a), V::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_eq(x, y, tol))
        }
        (V::Object(a), V::Object(b)) => {
            a.len() == b.len()
                && b.iter()
                    .all(|(k, y)| a.get(k).is_some_and(|x| value_eq(x, y, tol)))
        }
        (V::String(a), V::String(b)) => a == b,
        (V::Bool(a), V::Bool(b)) => a == b,
        (V::Null, V::Null) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-6;

    fn m(o: &str, e: &str) -> bool {
        tokens_match(o.as_bytes(), e.as_bytes(), TOL)
    }

    #[test]
    fn exact_tokens() {
        assert!(m("1 2 3\n", "1 2 3"));
        assert!(m("1\n2\n3", "1 2 3")); // line structure ignored
        assert!(m("  a\r\n\tb \x0b\x0c", "a b"));
        assert!(m("", ""));
        assert!(m("\n\n", " "));
        assert!(!m("1 2", "2 1")); // order matters
        assert!(!m("1 2 2", "1 2")); // extra token
        assert!(!m("1", "1 2")); // missing token
        assert!(!m("YES", "yes")); // case matters
        assert!(!m("", "0"));
    }

    #[test]
    fn only_ascii_whitespace_separates() {
        assert!(!m("1\u{a0}2", "1 2"));
        assert!(!m("1\u{3000}2", "1 2"));
        assert!(!m("1\x1c2", "1 2")); // Python's str.split() would split here
        assert!(m("1\x1c2", "1\x1c2"));
    }

    #[test]
    fn integers_are_exact() {
        assert!(!m("3.0", "3"));
        assert!(!m("3", "-3"));
        assert!(!m("03", "3"));
        assert!(!m("+3", "3"));
        assert!(!m("1000001", "1000000"));
    }

    #[test]
    fn floats_within_tolerance() {
        assert!(m("3", "3.0")); // the expected token is a float, the output parses
        assert!(m("0.3333333", "0.33333333"));
        assert!(!m("0.33333", "0.3333333333"));
        assert!(m("1.0000005", "1.0"));
        assert!(!m("1.000002", "1.0"));
        assert!(m("1000000.5", "1000000.0")); // relative above 1: tol * 1e6 = 1
        assert!(!m("1000001.5", "1000000.0"));
        assert!(m("5e-7", "0.0")); // absolute below 1
        assert!(!m("2e-6", "0.0"));
        assert!(m("1.5E3", "1500.0"));
        assert!(m("-0.0", "0.0"));
        assert!(m("0.50", ".5"));
        assert!(m("2", "2."));
        assert!(m("1e3", "1e3"));
        assert!(m("1000", "1e3"));
    }

    #[test]
    fn float_edge_cases() {
        assert!(m("nan", "nan")); // equal bytes
        assert!(!m("NaN", "nan"));
        assert!(!m("1.0", "nan"));
        assert!(m("inf", "inf"));
        assert!(m("Infinity", "inf")); // equal infinities
        assert!(!m("-inf", "inf"));
        assert!(!m("1e308", "inf"));
        assert!(!m("abc", "1.0"));
        assert!(!m("1_0.0", "10.0")); // no Python leniency
        assert!(!m("１.０", "1.0"));
        assert!(!m("0x1p0", "1.0"));
        assert!(!m("1.0.", "1.0"));
        assert!(!m("1,0", "1.0"));
        assert!(!m("1.", "1..")); // an unparsable expected token is compared as bytes
        assert!(m("1..", "1.."));
    }

    #[test]
    fn float_literal_classification() {
        for t in [
            "1.",
            ".5",
            "-0.0",
            "+2.5",
            "1e5",
            "1E-5",
            "inf",
            "-Infinity",
            "NaN",
            "+nan",
        ] {
            assert!(float_literal(t.as_bytes()).is_some(), "{t}");
        }
        for t in [
            "1", "-7", "+0", "e", ".", "1e", "ie", "info", "1_0.0", "0x1.0p1", "", "1.5f",
        ] {
            assert!(float_literal(t.as_bytes()).is_none(), "{t}");
        }
    }

    #[test]
    fn zero_and_nan_tolerance() {
        assert!(!tokens_match(b"1.0000001", b"1.0", 0.0));
        assert!(tokens_match(b"1", b"1.0", 0.0)); // equal values still match
        assert!(!tokens_match(b"1.0000001", b"1.0", f64::NAN));
    }

    #[test]
    fn non_utf8_bytes_compare_as_bytes() {
        assert!(tokens_match(b"\xff 1.0", b"\xff 1.0000001", TOL));
        assert!(!tokens_match(b"\xfe", b"\xff", TOL));
    }

    #[test]
    fn returned_values() {
        use serde_json::json;
        let v = |o: serde_json::Value, e: serde_json::Value| values_match(&o, &e, TOL);
        assert!(v(json!(3), json!([3])));
        assert!(v(json!([1, 2]), json!([1, 2])));
        assert!(v(json!([1, 2]), json!([[1, 2]])));
        assert!(v(json!(0.30000000000000004), json!([0.3])));
        assert!(!v(json!(0.31), json!([0.3])));
        assert!(!v(json!(true), json!([1])), "a bool is not a number");
        assert!(!v(json!(3.5), json!(3)), "an integer is expected exactly");
        assert!(v(json!({"a": [1.0]}), json!({"a": [1.0000001]})));
        assert!(!v(json!({"a": 1}), json!({"a": 1, "b": 2})));
        assert!(!v(json!("3"), json!(3)));
        assert!(!v(json!(null), json!([])));
    }
}
