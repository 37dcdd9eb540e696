//! What requests cost, and the caps that stop a run cleanly before it spends more.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::request::Usage;

/// Price of a model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million generated tokens.
    pub output: f64,
}

impl Price {
    /// The cost of `usage`, USD.
    pub fn cost(&self, usage: Usage) -> f64 {
        (usage.prompt_tokens as f64 * self.input + usage.completion_tokens as f64 * self.output)
            / 1e6
    }
}

/// List prices (USD per million tokens, standard tier) as OpenAI published them in 2025.
/// Providers change prices: `--price-in`/`--price-out` override this table, and a model not
/// in it has no estimate until they are given.
pub const PRICE_TABLE: &[(&str, Price)] = &[
    (
        "gpt-4o-mini",
        Price {
            input: 0.15,
            output: 0.60,
        },
    ),
    (
        "gpt-4o",
        Price {
            input: 2.50,
            output: 10.00,
        },
    ),
    (
        "gpt-4.1-nano",
        Price {
            input: 0.10,
            output: 0.40,
        },
    ),
    (
        "gpt-4.1-mini",
        Price {
            input: 0.40,
            output: 1.60,
        },
    ),
    (
        "gpt-4.1",
        Price {
            input: 2.00,
            output: 8.00,
        },
    ),
    (
        "gpt-3.5-turbo",
        Price {
            input: 0.50,
            output: 1.50,
        },
    ),
];

/// The table's price for `model`: the longest entry that the name (without a provider prefix
/// such as `openai/`) starts with.
pub fn table_price(model: &str) -> Option<Price> {
    let name = model.rsplit('/').next().unwrap_or(model);
    PRICE_TABLE
        .iter()
        .filter(|(prefix, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, p)| *p)
}

/// Caps on a run's new requests and spending.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Most new requests (answers from the ledger or cache are free).
    pub max_requests: Option<usize>,
    /// Most spending, USD (needs a price).
    pub max_cost: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    sent: usize,
    spent: f64,
    reserved: f64,
    refused: usize,
}

/// Tracks spending against the caps. A request reserves its worst case (its prompt estimate
/// plus `max_tokens`) before it is sent, so concurrent requests never overshoot the cap.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    price: Option<Price>,
    state: Mutex<State>,
}

/// A request's claim on the budget, settled when it ends.
#[derive(Debug)]
#[must_use = "settle the reservation"]
pub struct Reservation {
    worst: f64,
}

impl Budget {
    /// A budget with `limits` at `price` (`None`: unknown, so `max_cost` cannot be used).
    pub fn new(limits: Limits, price: Option<Price>) -> Budget {
        Budget {
            limits,
            price,
            state: Mutex::new(State::default()),
        }
    }

    /// The price in use.
    pub fn price(&self) -> Option<Price> {
        self.price
    }

    /// Claims room for one request; `None` when it would break a cap (the run stops).
    pub fn reserve(&self, prompt_tokens: usize, max_tokens: usize) -> Option<Reservation> {
        let mut s = self.state.lock().expect("budget lock");
        if self.limits.max_requests.is_some_and(|m| s.sent >= m) {
            s.refused += 1;
            return None;
        }
        let worst = self.price.map_or(0.0, |p| {
            p.cost(Usage {
                prompt_tokens,
                completion_tokens: max_tokens,
            })
        });
        if self
            .limits
            .max_cost
            .is_some_and(|m| s.spent + s.reserved + worst > m)
        {
            s.refused += 1;
            return None;
        }
        s.sent += 1;
        s.reserved += worst;
        Some(Reservation { worst })
    }

    /// Ends a reservation with what the request actually used (`None` if nothing was billed).
    pub fn settle(&self, reservation: Reservation, usage: Option<Usage>) {
        let mut s = self.state.lock().expect("budget lock");
        s.reserved -= reservation.worst;
        if let (Some(price), Some(usage)) = (self.price, usage) {
            s.spent += price.cost(usage);
        }
    }

    /// New requests sent so far.
    pub fn sent(&self) -> usize {
        self.state.lock().expect("budget lock").sent
    }

    /// Spending so far, USD (0 without a price).
    pub fn spent(&self) -> f64 {
        self.state.lock().expect("budget lock").spent
    }

    /// Requests refused because of a cap.
    pub fn refused(&self) -> usize {
        self.state.lock().expect("budget lock").refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_longest_prefix() {
        assert_eq!(table_price("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(table_price("openai/gpt-4o").unwrap().input, 2.50);
        assert_eq!(table_price("gpt-4.1-mini").unwrap().output, 1.60);
        assert_eq!(table_price("qwen2.5-coder-1.5b"), None);
    }

    #[test]
    fn caps_refuse_before_overspending() {
        let price = Price {
            input: 1.0,
            output: 2.0,
        };
        // Worst case of a request: 1000 prompt + 500 new tokens = 0.001 + 0.001 = $0.002.
        let b = Budget::new(
            Limits {
                max_requests: None,
                max_cost: Some(0.005),
            },
            Some(price),
        );
        let r1 = b.reserve(1000, 500).unwrap();
        let r2 = b.reserve(1000, 500).unwrap();
        assert!(b.reserve(1000, 500).is_none(), "0.006 would break 0.005");
        b.settle(
            r1,
            Some(Usage {
                prompt_tokens: 1000,
                completion_tokens: 100,
            }),
        );
        assert!((b.spent() - 0.0012).abs() < 1e-12);
        // 0.0012 spent + 0.002 reserved (r2) + 0.002 would break the cap; once r2 settles
        // without billing, there is room again.
        assert!(b.reserve(1000, 500).is_none());
        b.settle(r2, None);
        let r3 = b.reserve(1000, 500).unwrap();
        b.settle(r3, None);
        assert_eq!(b.sent(), 3);
        assert_eq!(b.refused(), 2);

        let n = Budget::new(
            Limits {
                max_requests: Some(1),
                max_cost: None,
            },
            None,
        );
        let r = n.reserve(10, 10).unwrap();
        n.settle(r, None);
        assert!(n.reserve(10, 10).is_none());
    }
}
