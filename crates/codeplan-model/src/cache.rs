//! Per-sequence key/value cache.

use candle_core::Tensor;
use candle_nn::kv_cache::KvCache;

use crate::error::Result;

/// Initial capacity in positions; buffers grow by this much when full.
const CHUNK: usize = 256;

/// The keys and values one sequence has produced so far, in every layer.
///
/// Each layer holds `(kv_heads, positions, head_dim)` buffers that grow in chunks, so a decode
/// step writes one row instead of copying the whole history.
#[derive(Debug)]
pub struct SequenceCache {
    layers: Vec<KvCache>,
    len: usize,
}

impl SequenceCache {
    /// An empty cache for a model with `num_layers` blocks.
    pub fn new(num_layers: usize) -> Self {
        SequenceCache {
            layers: (0..num_layers).map(|_| KvCache::new(1, CHUNK)).collect(),
            len: 0,
        }
    }

    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A deep copy: the `n` samples of one prompt each continue from a copy of the prompt's
    /// cache (the buffers are written in place, so sharing them would mix the samples).
    pub fn fork(&self) -> Result<Self> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let mut copy = KvCache::new(1, self.len.max(1).next_multiple_of(CHUNK));
            if let (Some(k), Some(v)) = (layer.k()?, layer.v()?) {
                copy.append(&k.contiguous()?, &v.contiguous()?)?;
            }
            layers.push(copy);
        }
        Ok(SequenceCache {
            layers,
            len: self.len,
        })
    }

    /// Appends this step's keys and values for layer `layer` and returns the whole history.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        Ok(self.layers[layer].append(k, v)?)
    }

    /// Records that `n` positions were appended to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
