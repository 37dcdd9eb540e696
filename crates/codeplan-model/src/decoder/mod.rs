//! The Llama-family decoder shared by every supported architecture.
//!
//! One forward pass takes any number of *segments* — (sequence cache, new tokens) — and runs
//! their rows through the matrix multiplications together, so a prompt's prefill, the decode
//! step of `n` samples, and the decode steps of several requests all batch the same way.
//! Attention is computed per segment against that segment's own cache.
//!
//! On the CPU placement, a pass where every segment feeds one token (a decode step) runs
//! fused ([`step`]); other passes, and every pass on a candle device (a GPU), run the general
//! path of candle operations, which is device-generic.

mod attend;
mod rows;
mod step;
#[cfg(test)]
mod tests;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use crate::cache::SequenceCache;
use crate::config::{DecoderConfig, RopeStyle};
use crate::device::Placement;
use crate::error::{ModelError, Result};
use crate::kernels::{quantize_input, Activations};
use crate::weights::{Embedding, Linear, Role, WeightSource};

/// New tokens for one sequence in a forward pass.
pub struct Segment<'a> {
    /// The sequence's cache; the new positions are appended to it.
    pub cache: &'a mut SequenceCache,
    /// Tokens to feed (the whole prompt for a prefill, one token for a decode step).
    pub tokens: &'a [u32],
}

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A loaded decoder-only transformer (weights, RoPE tables), ready to run.
pub struct Decoder {
    config: DecoderConfig,
    placement: Placement,
    device: Device,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    cos: Tensor,
    sin: Tensor,
    /// Each block's (attention, MLP) norm weights as plain values, for the fused step.
    norm_values: Vec<(Vec<f32>, Vec<f32>)>,
    /// The final norm's weights as plain values.
    final_norm_values: Vec<f32>,
}

impl Decoder {
    /// Loads every weight the configuration calls for from `source`, for the CPU.
    pub fn load(source: &mut WeightSource, config: DecoderConfig) -> Result<Self> {
        Self::load_on(source, config, &Placement::Cpu)
    }

    /// Loads every weight the configuration calls for from `source` where `placement` says.
    pub fn load_on(
        source: &mut WeightSource,
        config: DecoderConfig,
        placement: &Placement,
    ) -> Result<Self> {
        let c = &config;
        let dev = placement.device();
        let p = placement;
        let (d, kv_out, q_out) = (
            c.hidden_size,
            c.num_kv_heads * c.head_dim,
            c.num_heads * c.head_dim,
        );
        let embed = source.embedding(c.vocab_size, d, &dev)?;
        let mut blocks = Vec::with_capacity(c.num_layers);
        let ff = c.intermediate_size;
        for i in 0..c.num_layers {
            blocks.push(Block {
                attn_norm: source.norm(Role::AttnNorm(i), d, &dev)?,
                q: source.linear(Role::Q(i), q_out, d, c.attention_bias, p)?,
                k: source.linear(Role::K(i), kv_out, d, c.attention_bias, p)?,
                v: source.linear(Role::V(i), kv_out, d, c.attention_bias, p)?,
                o: source.linear(Role::O(i), d, q_out, false, p)?,
                ffn_norm: source.norm(Role::FfnNorm(i), d, &dev)?,
                gate: source.linear(Role::Gate(i), ff, d, false, p)?,
                up: source.linear(Role::Up(i), ff, d, false, p)?,
                down: source.linear(Role::Down(i), d, ff, false, p)?,
            });
        }
        let norm = source.norm(Role::FinalNorm, d, &dev)?;
        let lm_head = source.lm_head(c.vocab_size, d, p)?;
        let (cos, sin) = rope_tables(c, &dev)?;
        let norm_values = blocks
            .iter()
            .map(|b| Ok((b.attn_norm.to_vec1()?, b.ffn_norm.to_vec1()?)))
            .collect::<Result<_>>()?;
        let final_norm_values = norm.to_vec1()?;
        Ok(Decoder {
            config,
            placement: placement.clone(),
            device: dev,
            embed,
            blocks,
            norm,
            lm_head,
            cos,
            sin,
            norm_values,
            final_norm_values,
        })
    }

    /// The model's shape and constants.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Where the model runs.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// An empty cache for one sequence, kept where the model runs.
    pub fn new_cache(&self) -> SequenceCache {
        if self.placement.native_kernels() {
            SequenceCache::new(self.config.num_layers)
        } else {
            SequenceCache::on_device(self.config.num_layers)
        }
    }

    /// Runs the new tokens of every segment and returns the next-token logits after each
    /// segment's last token, `(segments, vocab)` in f32.
    ///
    /// On error the segments' caches are left in an unspecified state.
    pub fn forward(&self, segments: &mut [Segment<'_>]) -> Result<Tensor> {
        self.check(segments)?;
        let fusable = self.placement.native_kernels()
            && segments
                .iter()
                .all(|s| s.tokens.len() == 1 && s.cache.is_host());
        if fusable {
            self.forward_step(segments)
        } else {
            self.run_general(segments)
        }
    }

    /// [`Decoder::forward`] always through the general path of candle operations, even for a
    /// decode step: the reference the fused step is tested against.
    pub fn forward_general(&self, segments: &mut [Segment<'_>]) -> Result<Tensor> {
        self.check(segments)?;
        self.run_general(segments)
    }

    /// Refuses passes the model cannot run: no tokens, unknown ids, past the context.
    fn check(&self, segments: &[Segment<'_>]) -> Result<()> {
        let c = &self.config;
        if segments.is_empty() || segments.iter().any(|s| s.tokens.is_empty()) {
            return Err(ModelError::InvalidRequest(
                "a forward pass needs at least one token per segment".into(),
            ));
        }
        for s in segments.iter() {
            let end = s.cache.len() + s.tokens.len();
            if end > c.context_length {
                return Err(ModelError::ContextOverflow {
                    needed: end,
                    context: c.context_length,
                });
            }
            if let Some(&bad) = s.tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
                return Err(ModelError::InvalidRequest(format!(
                    "token id {bad} is outside the vocabulary of {} tokens",
                    c.vocab_size
                )));
            }
        }
        Ok(())
    }

    /// The general path: any number of tokens per segment, candle operations throughout.
    fn run_general(&self, segments: &mut [Segment<'_>]) -> Result<Tensor> {
        let c = &self.config;
        let mut rows = Vec::new();
        let mut positions = Vec::new();
        let mut last_rows = Vec::with_capacity(segments.len());
        for s in segments.iter() {
            let start = s.cache.len();
            rows.extend_from_slice(s.tokens);
            positions.extend((start..start + s.tokens.len()).map(|p| p as u32));
            last_rows.push((rows.len() - 1) as u32);
        }
        let total = rows.len();
        let dev = &self.device;
        let mut x = self.embed.forward(&Tensor::from_vec(rows, total, dev)?)?;
        let pos = Tensor::from_vec(positions, total, dev)?;
        let cos = self.cos.index_select(&pos, 0)?;
        let sin = self.sin.index_select(&pos, 0)?;
        let eps = c.rms_norm_eps as f32;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let width = c.num_kv_heads * c.head_dim;
        for (l, block) in self.blocks.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &block.attn_norm, eps)?;
            let qkv = project(&h, &[&block.q, &block.k, &block.v])?;
            let q = self.rope(&qkv[0], c.num_heads, &cos, &sin)?;
            let k = self.rope(&qkv[1], c.num_kv_heads, &cos, &sin)?;
            let mut outs = Vec::with_capacity(segments.len());
            let mut r0 = 0;
            for s in segments.iter_mut() {
                let t = s.tokens.len();
                let q = q.narrow(1, r0, t)?.contiguous()?;
                // The cache keeps rows `(positions, kv_heads · head_dim)`, RoPE applied.
                let k = k
                    .narrow(1, r0, t)?
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((t, width))?;
                let v = qkv[2].narrow(0, r0, t)?;
                s.cache.append_tensors(l, &k, &v)?;
                let (prefix, (ok, ov)) = s.cache.tensors(l, width, dev)?;
                let prefix = match prefix {
                    Some((pk, pv)) => Some((self.heads_first(&pk)?, self.heads_first(&pv)?)),
                    None => None,
                };
                let (k, v) = (self.heads_first(&ok)?, self.heads_first(&ov)?);
                let start = s.cache.own_len();
                outs.push(attention(c, &q, prefix.as_ref(), &k, &v, start, scale)?);
                r0 += t;
            }
            let o = Tensor::cat(&outs, 0)?;
            x = (x + block.o.forward(&o)?)?;
            let h = candle_nn::ops::rms_norm(&x, &block.ffn_norm, eps)?;
            let gu = project(&h, &[&block.gate, &block.up])?;
            let mlp = (candle_nn::ops::silu(&gu[0])? * &gu[1])?;
            x = (x + block.down.forward(&mlp)?)?;
        }
        for s in segments.iter_mut() {
            s.cache.advance(s.tokens.len());
        }
        let last = x.index_select(&Tensor::new(last_rows, dev)?, 0)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, eps)?;
        Ok(self.lm_head.forward(&last)?.to_dtype(DType::F32)?)
    }

    /// Cached rows `(positions, kv_heads·head_dim)` → `(kv_heads, positions, head_dim)`, the
    /// layout the general path's attention multiplies.
    fn heads_first(&self, rows: &Tensor) -> Result<Tensor> {
        let (kvh, hd) = (self.config.num_kv_heads, self.config.head_dim);
        Ok(rows
            .reshape((rows.dim(0)?, kvh, hd))?
            .transpose(0, 1)?
            .contiguous()?)
    }

    /// `(rows, heads·head_dim)` → `(heads, rows, head_dim)` with RoPE applied.
    fn rope(&self, x: &Tensor, heads: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0)?;
        let x = x
            .reshape((rows, heads, self.config.head_dim))?
            .transpose(0, 1)?
            .contiguous()?
            .unsqueeze(0)?;
        let y = match self.config.rope_style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, cos, sin)?,
            RopeStyle::Halves => candle_nn::rotary_emb::rope(&x, cos, sin)?,
        };
        Ok(y.squeeze(0)?)
    }
}

/// Multiplies one input by several layers (q/k/v, gate/up): in one fused pass over the input
/// when candle's kernels allow, and with the input quantised once per activation layout when
/// codeplan's kernels run them all.
fn project(x: &Tensor, layers: &[&Linear]) -> Result<Vec<Tensor>> {
    let own: Option<Vec<_>> = layers.iter().map(|l| l.quant()).collect();
    if let Some(own) = own {
        // At most two layouts (32-value blocks, k-quant super-blocks); usually one.
        let mut quantised: Vec<Activations> = Vec::with_capacity(1);
        let mut outs = Vec::with_capacity(layers.len());
        for (q, l) in own.iter().zip(layers) {
            let format = q.input_format();
            let i = match quantised.iter().position(|a| a.format() == format) {
                Some(i) => i,
                None => {
                    quantised.push(quantize_input(x, format)?);
                    quantised.len() - 1
                }
            };
            outs.push(l.add_bias(q.forward_rows(&quantised[i])?)?);
        }
        return Ok(outs);
    }
    let quantised: Option<Vec<&QTensor>> = layers
        .iter()
        .map(|l| l.qtensor().map(|q| q.as_ref()))
        .collect();
    if let Some(qs) = quantised {
        if let Some(outs) = QTensor::gemv_fused_shared_lhs(&qs, x)? {
            return outs
                .into_iter()
                .zip(layers)
                .map(|(y, l)| l.add_bias(y))
                .collect();
        }
    }
    layers.iter().map(|l| l.forward(x)).collect()
}

/// Causal grouped-query attention of one segment: `q (heads, t, hd)` against an optional shared
/// prefix (fully visible) and the sequence's own `k, v (kv_heads, start + t, hd)`, where `start`
/// counts the sequence's own positions before this step; returns `(t, heads·hd)`.
fn attention(
    c: &DecoderConfig,
    q: &Tensor,
    prefix: Option<&(Tensor, Tensor)>,
    k: &Tensor,
    v: &Tensor,
    start: usize,
    scale: f64,
) -> Result<Tensor> {
    let t = q.dim(1)?;
    let len = k.dim(1)?;
    let g = c.group_size();
    // Query heads that share a key/value head are adjacent, so grouping them is a reshape,
    // not a copy of the keys.
    let q = q.reshape((c.num_kv_heads, g * t, c.head_dim))?;
    let mut att = (q.matmul(&k.t()?)? * scale)?;
    if t > 1 {
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..len).map(move |j| {
                    if j > start + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, len), q.device())?;
        att = att
            .reshape((c.num_kv_heads, g, t, len))?
            .broadcast_add(&mask)?
            .reshape((c.num_kv_heads, g * t, len))?;
    }
    let out = match prefix {
        None => candle_nn::ops::softmax_last_dim(&att)?.matmul(v)?,
        Some((pk, pv)) => {
            // One softmax over prefix and own scores together, then the two weighted sums.
            let plen = pk.dim(1)?;
            let patt = (q.matmul(&pk.t()?)? * scale)?;
            let probs = candle_nn::ops::softmax_last_dim(&Tensor::cat(&[&patt, &att], 2)?)?;
            let pout = probs.narrow(2, 0, plen)?.matmul(pv)?;
            let own = probs.narrow(2, plen, len)?.matmul(v)?;
            (pout + own)?
        }
    };
    Ok(out
        .reshape((c.num_heads, t, c.head_dim))?
        .transpose(0, 1)?
        .reshape((t, c.num_heads * c.head_dim))?)
}

/// cos/sin tables `(context, head_dim / 2)` for every position the model accepts, on `dev`.
fn rope_tables(c: &DecoderConfig, dev: &Device) -> Result<(Tensor, Tensor)> {
    let half = c.head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1.0 / c.rope_theta.powf(2.0 * i as f32 / c.head_dim as f32))
        .collect();
    let inv_freq = Tensor::from_vec(inv_freq, (1, half), dev)?;
    let positions = Tensor::arange(0u32, c.context_length as u32, dev)?
        .to_dtype(DType::F32)?
        .reshape((c.context_length, 1))?;
    let freqs = positions.broadcast_mul(&inv_freq)?;
    Ok((freqs.cos()?, freqs.sin()?))
}
