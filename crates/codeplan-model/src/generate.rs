//! Token-level generation of one prompt: one prefill shared by `n` samples, decoded as a batch.

use crate::batch::{Batch, Event, FinishReason, PromptRequest, Timings};
use crate::decoder::Decoder;
use crate::error::Result;

/// What the caller decides after seeing a sample's newest token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep decoding this sample.
    Continue,
    /// End it now (e.g. a stop sequence appeared in its text), with finish reason `Stop`.
    Stop,
}

/// One finished sample.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenCompletion {
    /// Generated ids, without the stop token.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// Runs a prompt through the model once and decodes its `n` samples as one batch.
///
/// `on_token(sample, token)` sees every generated token (stop tokens excluded) and may end a
/// sample early. Samples do not depend on `n`: sample `i` uses the random stream `seed + i`.
pub fn generate_tokens(
    decoder: &Decoder,
    request: &PromptRequest<'_>,
    mut on_token: impl FnMut(usize, u32) -> Control,
) -> Result<(Vec<TokenCompletion>, Timings)> {
    let mut batch = Batch::new();
    let ids = batch.add(decoder, request)?;
    let index_of = |id| {
        ids.iter()
            .position(|&x| x == id)
            .expect("an id of this batch")
    };
    let mut done: Vec<Option<TokenCompletion>> = vec![None; ids.len()];
    while !batch.is_empty() {
        for event in batch.step(decoder)? {
            match event {
                Event::Token { id, token } => {
                    if on_token(index_of(id), token) == Control::Stop {
                        batch.stop(id);
                    }
                }
                Event::Finished { id, reason, tokens } => {
                    done[index_of(id)] = Some(TokenCompletion {
                        tokens,
                        finish_reason: reason,
                    });
                }
            }
        }
    }
    let completions = done
        .into_iter()
        .map(|c| c.expect("every sample finishes before the batch empties"))
        .collect();
    Ok((completions, batch.timings()))
}
