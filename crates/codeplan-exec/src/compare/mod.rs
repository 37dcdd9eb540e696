//! Output comparison: the APPS reference cascade and our own strict token comparison.
//!
//! * [`pytext`] reproduces the handful of Python 3.11 `str`/`float` operations the APPS harness
//!   uses (`strip`, `split`, `splitlines`, `float()`, `round`). Rust's own `trim`, `lines` or
//!   `parse::<f64>` differ from them at the edges, and those edges decide verdicts.
//! * [`apps`] is the standard-input comparison cascade of hendrycks/apps `eval/testing_util.py`
//!   (spec `apps-judging.md` §5), stage by stage.
//! * [`strict`] is the stricter token comparison used by `strict` mode (spec §8).

pub mod apps;
pub mod pytext;
pub mod strict;
