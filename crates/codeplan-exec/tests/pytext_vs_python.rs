// Differential test: the Python text semantics of `compare::pytext` and the APPS cascade of
// `compare::apps` against the real interpreter (`python3` from PATH).
//
// Deterministic pseudo-random strings over an alphabet of edge cases are written to a temporary
// JSON file; one python3 process computes `s.strip()`, `s.split()`, `s.splitlines()`,
// `float(s)` and `round(float(s), 3)` for each, `round(x, n)` for chosen doubles, and the stage
// of the APPS stdio cascade for pairs of texts (with numpy's `allclose` if numpy is importable,
// else the same formula in plain Python). Floats are compared by bit pattern, which is stricter
// than comparing `repr`s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use codeplan_exec::compare::apps::{compare_stdio, StdioStage};
use codeplan_exec::compare::pytext::{
    py_float, py_round, py_split_whitespace, py_splitlines, py_strip,
};
use serde_json::{json, Value};

/// Counts of generated cases; large enough to hit every piece of the alphabets many times.
const RANDOM_STRINGS: usize = 4000;
const NUMERIC_STRINGS: usize = 4000;
const ROUND_VALUES: usize = 3000;
const CASCADE_PAIRS: usize = 6000;

const PY_SCRIPT: &str = r#"
import json, math, struct, sys
try:
    import numpy as np
    def allclose(a, b):
        return bool(np.allclose(a, b))
    HAVE_NUMPY = True
except ImportError:
    def allclose(a, b):
        return all((abs(x - y) <= 1e-8 + 1e-5 * abs(y) and math.isfinite(y)) or x == y
                   for x, y in zip(a, b))
    HAVE_NUMPY = False

def bits(x):
    return str(struct.unpack('<Q', struct.pack('<d', x))[0])

def from_bits(s):
    return struct.unpack('<d', struct.pack('<Q', int(s)))[0]

def pyfloat(s):
    try:
        return float(s)
    except ValueError:
        return None

def stage(out, g):
    o = out.splitlines()
    if "\n".join(o).strip() == g.strip():
        return "S0a"
    if "\n".join(l.strip() for l in o).strip() == g.strip():
        return "S0b"
    if o == [g]:
        return "S1"
    G = [x.strip() for x in g.split("\n") if x]
    if o == G:
        return "S2"
    O = [l for l in o if l]
    if O == G:
        return "S3"
    try:
        a = [float(l) for l in O]
        b = [float(l) for l in G]
        if len(a) == len(b) and allclose(a, b):
            return "S3f"
    except ValueError:
        pass
    if O == [set(x.split()) for x in G]:
        return "S4"
    Os = [set(t) for t in (l.split() for l in O) if t]
    Gs = [set(x.split()) for x in G]
    if set(map(frozenset, Os)) == set(map(frozenset, Gs)):
        return "S5"
    try:
        r = lambda sets: set(frozenset(round(float(t), 3) for t in s) for s in sets)
        if r(Os) == r(Gs):
            return "S6"
    except ValueError:
        pass
    return None

data = json.load(open(sys.argv[1], encoding="utf-8"))
res = {"have_numpy": HAVE_NUMPY, "version": sys.version.split()[0], "strings": [], "rounds": [], "stages": []}
for s in data["strings"]:
    f = pyfloat(s)
    res["strings"].append({
        "strip": s.strip(),
        "split": s.split(),
        "splitlines": s.splitlines(),
        "float": None if f is None else bits(f),
        "round3": None if f is None else bits(round(f, 3)),
    })
for x, n in data["rounds"]:
    try:
        res["rounds"].append(bits(round(from_bits(x), n)))
    except OverflowError:
        res["rounds"].append("overflow")
for out, g in data["pairs"]:
    res["stages"].append(stage(out, g))
json.dump(res, sys.stdout)
"#;

/// A 64-bit LCG (Knuth's MMIX constants); deterministic and good enough to pick from lists.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Every Python whitespace and line-break character, plus look-alikes that are neither.
const SPACES: &[&str] = &[
    "\t", "\n", "\x0b", "\x0c", "\r", "\r\n", "\x1c", "\x1d", "\x1e", "\x1f", " ", "\u{85}",
    "\u{a0}", "\u{1680}", "\u{2000}", "\u{2005}", "\u{200a}", "\u{2028}", "\u{2029}", "\u{202f}",
    "\u{205f}", "\u{3000}", "\u{200b}", "\u{180e}", "\u{feff}",
];

const DIGITS: &[&str] = &[
    "0",
    "1",
    "2",
    "5",
    "7",
    "9",
    "\u{661}",
    "\u{6f5}",
    "\u{969}",
    "\u{ff11}",
    "\u{ff19}",
    "\u{1d7ce}",
    "\u{1d7ff}",
    "\u{b2}",
    "\u{2167}",
    "\u{19da}",
];

const OTHERS: &[&str] = &[
    ".", "_", "e", "E", "+", "-", "inf", "nan", "Infinity", "INF", "NaN", "a", "x", "\u{2212}",
    "\x7f", "\0", "0x", "é",
];

fn random_string(rng: &mut Lcg) -> String {
    let len = rng.below(10);
    (0..len)
        .map(|_| match rng.below(3) {
            0 => rng.pick(SPACES),
            1 => rng.pick(DIGITS),
            _ => rng.pick(OTHERS),
        })
        .collect()
}

/// A string that is a float literal most of the time, with occasional defects.
fn numeric_string(rng: &mut Lcg) -> String {
    // Mostly whitespace float() strips; sometimes separators it does not (U+001C, U+001F).
    let ws = |rng: &mut Lcg| match rng.below(12) {
        0 => rng.pick(&["\x1c", "\x1f", "\u{200b}"]),
        _ => rng.pick(&[
            " ", "\t", "\n", "\u{a0}", "\u{3000}", "\u{85}", "\r\n", "", "", "",
        ]),
    };
    let mut s = String::new();
    let digits = |rng: &mut Lcg, s: &mut String| {
        for i in 0..1 + rng.below(6) {
            if i > 0 && rng.below(8) == 0 {
                s.push('_');
            }
            s.push_str(if rng.below(6) == 0 {
                rng.pick(DIGITS)
            } else {
                rng.pick(&DIGITS[..6])
            });
        }
    };
    s.push_str(ws(rng));
    s.push_str(rng.pick(&["", "", "", "+", "-", "-", "--", "_"]));
    match rng.below(10) {
        0 => s.push_str(rng.pick(&["inf", "nan", "INFINITY", "iNf", "infinit", "nana"])),
        _ => {
            if rng.below(4) != 0 {
                digits(rng, &mut s);
            }
            if rng.below(2) == 0 {
                s.push_str(rng.pick(&[".", ".", ".", ".", "._", "_."]));
                if rng.below(3) != 0 {
                    digits(rng, &mut s);
                }
            }
            if rng.below(3) == 0 {
                s.push_str(rng.pick(&["e", "E", "e", "E", "e_", "_e"]));
                s.push_str(rng.pick(&["", "+", "-"]));
                if rng.below(6) != 0 {
                    digits(rng, &mut s);
                }
            }
        }
    }
    if rng.below(20) == 0 {
        s.push_str(rng.pick(&["_", "x", "\u{200b}", "\u{2212}", "5_", "e3"]));
    }
    s.push_str(ws(rng));
    s
}

/// Doubles that stress round(x, n): exact ties, near-ties, random bit patterns, extremes.
fn round_case(rng: &mut Lcg) -> (f64, i32) {
    let n = [
        0, 1, 2, 3, 3, 3, 4, 6, 15, 17, 20, 300, 330, -1, -2, -5, -20, -300, -320,
    ][rng.below(19)];
    let x = match rng.below(6) {
        // k / 2^j: exact binary fractions, many of them exact decimal ties.
        0 => (rng.below(1 << 20) as f64) / f64::powi(2.0, rng.below(24) as i32),
        // Decimal strings with n + 1 places ending in 5: the classic near-ties.
        1 => format!("{}.{:04}5", rng.below(1000), rng.below(10000))
            .parse()
            .unwrap(),
        // Integers with ties at negative ndigits (e.g. 1250, 1350).
        2 => (rng.below(100_000) as f64) * 10.0 + 5.0 * rng.below(2) as f64,
        // Any finite bit pattern.
        3 => loop {
            let v = f64::from_bits((rng.next() << 11) ^ rng.next());
            if v.is_finite() {
                break v;
            }
        },
        4 => [
            0.0,
            -0.0,
            5e-324,
            f64::MAX,
            -f64::MAX,
            1e308,
            1.5e308,
            1e22,
            2.5,
            0.5,
            -0.5,
        ][rng.below(11)],
        _ => (rng.next() as f64 / (1u64 << 53) as f64) * f64::powi(10.0, rng.below(8) as i32 - 3),
    };
    (if rng.below(2) == 0 { -x } else { x }, n)
}

/// Pairs of (stdout, expected) texts built to end at every stage of the cascade, and to miss.
fn cascade_pair(rng: &mut Lcg) -> (String, String) {
    const TOKENS: &[&str] = &[
        "1", "2", "10", "1.0", "1.0001", "1.000001", "0.0625", "0.062", "0.3335", "0.334", "nan",
        "NaN", "inf", "-0", "0", "-0.0001", "1_0", "\u{ff11}", "a", "A", "yes", "YES", "x y",
    ];
    const SEPS: &[&str] = &[
        " ", " ", "  ", "\t", "\n", "\n", "\n", "\r\n", "\r", "\x0c", "\x0b", "\x1c", "\x1f",
        "\u{a0}", "\u{2028}", "\u{85}", "\n\n", "\n \n", "\r\n\r\n", " \n",
    ];
    let text = |rng: &mut Lcg| {
        let mut s = String::new();
        if rng.below(4) == 0 {
            s.push_str(rng.pick(SEPS));
        }
        for i in 0..rng.below(5) {
            if i > 0 {
                s.push_str(rng.pick(SEPS));
            }
            s.push_str(rng.pick(TOKENS));
        }
        if rng.below(3) == 0 {
            s.push_str(rng.pick(SEPS));
        }
        s
    };
    if rng.below(8) == 0 {
        // Output lines padded or separated by blank lines: S0b, S3.
        let expected = text(rng);
        let pad = rng.pick(&[" ", "\u{a0}", "\t", "\n", " \n"]);
        let out = py_splitlines(&expected)
            .iter()
            .map(|l| format!("{l}{pad}"))
            .collect::<Vec<_>>()
            .join(rng.pick(&["\n", "\r\n", "\n\n"]));
        return (out, expected);
    }
    let out = text(rng);
    let expected = match rng.below(6) {
        0 => text(rng),
        // Same tokens, whitespace re-drawn: S0 to S5 territory.
        1 | 2 => {
            let toks = py_split_whitespace(&out);
            let mut s = String::new();
            for (i, t) in toks.iter().enumerate() {
                if i > 0 {
                    s.push_str(rng.pick(SEPS));
                }
                s.push_str(t);
            }
            s
        }
        // Lines reversed: the set stages.
        3 => py_splitlines(&out)
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(rng.pick(&["\n", "\r\n", "\n\n"])),
        // Tokens replaced by nearby numbers: S3f and S6.
        4 => out
            .split(' ')
            .map(|t| match t {
                "1" => "1.000001",
                "1.0001" => "1",
                "0.0625" => "0.0620000001",
                "0.3335" => "0.334",
                "-0" => "0",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => format!("{}{}", rng.pick(&["", " ", "\n", "\u{a0}"]), out),
    };
    (out, expected)
}

fn bits_of(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| Value::String(x.to_bits().to_string()))
}

fn stage_name(s: Option<StdioStage>) -> Value {
    s.map_or(Value::Null, |s| Value::String(format!("{s:?}")))
}

fn run_python(input: &Value) -> Value {
    let path: PathBuf =
        std::env::temp_dir().join(format!("pytext_vs_python_{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec(input).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY_SCRIPT)
        .arg(&path)
        .output()
        .expect("python3 must be on PATH for this test");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python3 printed JSON")
}

#[test]
fn pytext_and_cascade_agree_with_python() {
    let mut rng = Lcg(0x5eed_c0de_2024);
    let mut strings: Vec<String> = [
        "",
        " ",
        "1",
        " 1 ",
        "1\x1c",
        "\x1c1",
        "1_0",
        "1__0",
        "_1",
        "1_",
        "0x10",
        "３.",
        ".5",
        "١٢",
        "１_２",
        "-nan",
        "+inf",
        "infinity",
        "a\r\nb\rc\n",
        "\n",
        "a\n\n",
        "\u{85}x\u{2028}",
        "2.675",
        "0.0625",
        "0.3335",
        "1e400",
        "-1e-400",
        "1e1_0",
        "1_e5",
        "nan(1)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    strings.extend((0..RANDOM_STRINGS).map(|_| random_string(&mut rng)));
    strings.extend((0..NUMERIC_STRINGS).map(|_| numeric_string(&mut rng)));
    let rounds: Vec<(f64, i32)> = (0..ROUND_VALUES).map(|_| round_case(&mut rng)).collect();
    let pairs: Vec<(String, String)> = (0..CASCADE_PAIRS).map(|_| cascade_pair(&mut rng)).collect();

    let input = json!({
        "strings": strings,
        "rounds": rounds.iter().map(|&(x, n)| json!([x.to_bits().to_string(), n])).collect::<Vec<_>>(),
        "pairs": pairs,
    });
    let py = run_python(&input);

    let mut mismatches = Vec::new();
    let mut floats_parsed = 0;
    for (s, want) in strings.iter().zip(py["strings"].as_array().unwrap()) {
        let f = py_float(s);
        floats_parsed += usize::from(f.is_some());
        let got = json!({
            "strip": py_strip(s),
            "split": py_split_whitespace(s),
            "splitlines": py_splitlines(s),
            "float": bits_of(f),
            "round3": bits_of(f.map(|x| py_round(x, 3))),
        });
        if &got != want {
            mismatches.push(format!("{s:?}: rust {got} python {want}"));
        }
    }
    for (&(x, n), want) in rounds.iter().zip(py["rounds"].as_array().unwrap()) {
        let r = py_round(x, n);
        let got = if want == "overflow" && r.is_infinite() && x.is_finite() {
            json!("overflow")
        } else {
            json!(r.to_bits().to_string())
        };
        if &got != want {
            mismatches.push(format!("round({x:e}, {n}): rust {r:e} python {want}"));
        }
    }
    let mut stage_counts: BTreeMap<String, usize> = BTreeMap::new();
    for ((o, g), want) in pairs.iter().zip(py["stages"].as_array().unwrap()) {
        let got = stage_name(compare_stdio(o, g));
        *stage_counts
            .entry(got.as_str().unwrap_or("None").to_string())
            .or_default() += 1;
        if &got != want {
            mismatches.push(format!("stage({o:?}, {g:?}): rust {got} python {want}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches with python {} (first 30):\n{}",
        mismatches.len(),
        py["version"],
        mismatches
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Guard against a generator that stopped exercising the interesting cases.
    assert!(
        floats_parsed > NUMERIC_STRINGS / 3,
        "only {floats_parsed} strings parsed as floats"
    );
    for s in ["S0a", "S0b", "S2", "S3", "S3f", "S5", "S6", "None"] {
        assert!(
            stage_counts.get(s).copied().unwrap_or(0) >= 10,
            "stage {s} rarely hit: {stage_counts:?}"
        );
    }
    eprintln!(
        "agreed with python {} (numpy: {}) on {} strings ({floats_parsed} floats), {} round() cases, {} cascade pairs {stage_counts:?}",
        py["version"],
        py["have_numpy"],
        strings.len(),
        rounds.len(),
        pairs.len()
    );
}
