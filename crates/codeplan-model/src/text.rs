//! From tokens to text while generating: stop sequences and streaming deltas.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// Follows one sample's text as tokens arrive: finds stop sequences, and releases text for
/// streaming only once it can no longer turn out to be the start of a stop sequence or half of
/// a UTF-8 character.
#[derive(Clone, Debug)]
pub struct TextTracker {
    stops: Vec<String>,
    tokens: Vec<u32>,
    text: String,
    emitted: usize,
    stopped: bool,
}

/// What one new token did to a sample's text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    /// Text now safe to show (possibly empty).
    pub delta: String,
    /// A stop sequence appeared: the sample must end (its text ends before the stop sequence).
    pub stopped: bool,
}

impl TextTracker {
    /// A tracker that ends the text at the first of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        TextTracker {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            tokens: Vec::new(),
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds a token.
    pub fn push(&mut self, tokenizer: &Tokenizer, token: u32) -> Result<Update> {
        if self.stopped {
            return Ok(Update {
                delta: String::new(),
                stopped: true,
            });
        }
        self.tokens.push(token);
        // Decoding the whole sample each time keeps multi-token characters and the tokenizer's
        // own cleanup rules right; samples are short next to the model's cost per token.
        let text = tokenizer.decode(&self.tokens, true)?;
        // Only the part that may contain a new stop occurrence is searched.
        let search_from =
            floor_char_boundary(&text, self.text.len().saturating_sub(self.max_stop_len()));
        let cut = self
            .stops
            .iter()
            .filter_map(|s| {
                text[search_from..]
                    .find(s.as_str())
                    .map(|i| search_from + i)
            })
            .min();
        self.text = text;
        if let Some(cut) = cut {
            self.text.truncate(cut);
            self.stopped = true;
        }
        let safe = if self.stopped {
            self.text.len()
        } else {
            self.safe_len()
        };
        let delta = if safe > self.emitted {
            let d = self.text[self.emitted..safe].to_owned();
            self.emitted = safe;
            d
        } else {
            String::new()
        };
        Ok(Update {
            delta,
            stopped: self.stopped,
        })
    }

    /// Text not yet released (call once the sample has ended).
    pub fn finish(&mut self) -> String {
        let start = self.emitted.min(self.text.len());
        self.emitted = self.text.len();
        self.text[start..].to_owned()
    }

    /// The sample's text so far (cut before a stop sequence once one appeared).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The sample's tokens so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn max_stop_len(&self) -> usize {
        self.stops.iter().map(String::len).max().unwrap_or(0)
    }

    /// Length of the prefix that can be shown: it holds back a trailing replacement character
    /// (a byte sequence still incomplete) and any tail that is a prefix of a stop sequence.
    fn safe_len(&self) -> usize {
        let text = self.text.trim_end_matches('\u{FFFD}');
        let mut safe = text.len();
        for stop in &self.stops {
            for k in (1..stop.len()).rev() {
                if stop.is_char_boundary(k) && text.ends_with(&stop[..k]) {
                    safe = safe.min(text.len() - k);
                    break;
                }
            }
        }
        floor_char_boundary(text, safe)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
