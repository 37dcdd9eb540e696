//! Per-sequence key/value cache, optionally continuing a shared, frozen prefix.

use std::sync::Arc;

use candle_core::Tensor;
use candle_nn::kv_cache::KvCache;

use crate::error::Result;

/// Initial capacity in positions; buffers grow by this much when full.
const CHUNK: usize = 256;

/// The keys and values one sequence has produced so far, in every layer.
///
/// Each layer holds `(kv_heads, positions, head_dim)` buffers that grow in chunks, so a decode
/// step writes one row instead of copying the whole history. The `n` samples of one prompt
/// share the prompt's cache as a read-only prefix ([`SequenceCache::continuing`]) and each keeps
/// only its own positions, so memory grows with the samples' tokens, not `n` × the prompt.
#[derive(Debug)]
pub struct SequenceCache {
    prefix: Option<Arc<SequenceCache>>,
    /// Contiguous copies of every layer's keys and values, made once by [`Self::freeze`].
    frozen: Vec<(Tensor, Tensor)>,
    layers: Vec<KvCache>,
    /// Positions in `layers` (not counting the prefix).
    own: usize,
}

impl SequenceCache {
    /// An empty cache for a model with `num_layers` blocks.
    pub fn new(num_layers: usize) -> Self {
        SequenceCache {
            prefix: None,
            frozen: Vec::new(),
            layers: (0..num_layers).map(|_| KvCache::new(1, CHUNK)).collect(),
            own: 0,
        }
    }

    /// Makes this (prefix-free) cache a shared, read-only prefix for [`Self::continuing`]:
    /// its keys and values are laid out contiguously once, so no decode step copies them.
    pub fn freeze(self) -> Result<Arc<SequenceCache>> {
        let mut frozen = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            if let (Some(k), Some(v)) = (layer.k()?, layer.v()?) {
                frozen.push((k.contiguous()?, v.contiguous()?));
            }
        }
        let num_layers = self.layers.len();
        Ok(Arc::new(SequenceCache {
            prefix: None,
            frozen,
            // The growable buffers are dropped: the contiguous copies replace them.
            layers: (0..num_layers).map(|_| KvCache::new(1, 1)).collect(),
            own: self.own,
        }))
    }

    /// An empty continuation of a [frozen](Self::freeze) `prefix`: positions start after the
    /// prefix's, and attention sees the prefix's keys and values without copying them.
    pub fn continuing(prefix: Arc<SequenceCache>) -> Self {
        debug_assert!(prefix.prefix.is_none() && prefix.frozen.len() == prefix.layers.len());
        let mut cache = SequenceCache::new(prefix.layers.len());
        cache.prefix = Some(prefix);
        cache
    }

    /// Positions cached, the prefix's included.
    pub fn len(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.len()) + self.own
    }

    /// Positions of this sequence's own (the prefix's excluded).
    pub(crate) fn own_len(&self) -> usize {
        self.own
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared prefix's keys and values for layer `layer`, when there is a prefix.
    pub(crate) fn prefix_kv(&self, layer: usize) -> Result<Option<(Tensor, Tensor)>> {
        Ok(self
            .prefix
            .as_ref()
            .and_then(|p| p.frozen.get(layer))
            .cloned())
    }

    /// Appends this step's keys and values for layer `layer` and returns this sequence's own
    /// history (the prefix excluded).
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
        self.own += n;
    }
}
