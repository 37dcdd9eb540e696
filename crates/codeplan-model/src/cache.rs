//! Per-sequence key/value cache, optionally continuing a shared, frozen prefix.

use std::sync::Arc;

use crate::error::Result;

/// Positions reserved at a time, so that a decode step writes one row instead of growing the
/// buffer (and copying the history) on every step.
const CHUNK: usize = 256;

/// One layer's keys and values, `(positions, kv_heads · head_dim)` row-major: the layout the
/// key/value projections produce, so appending a step is one copy of its rows.
#[derive(Debug, Default)]
struct LayerKv {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// The keys and values one sequence has produced so far, in every layer.
///
/// The `n` samples of one prompt share the prompt's cache as a read-only prefix
/// ([`SequenceCache::continuing`]) and each keeps only its own positions, so memory grows with
/// the samples' tokens, not `n` × the prompt.
#[derive(Debug)]
pub struct SequenceCache {
    prefix: Option<Arc<SequenceCache>>,
    layers: Vec<LayerKv>,
    /// Positions in `layers` (not counting the prefix).
    own: usize,
}

impl SequenceCache {
    /// An empty cache for a model with `num_layers` blocks.
    pub fn new(num_layers: usize) -> Self {
        SequenceCache {
            prefix: None,
            layers: (0..num_layers).map(|_| LayerKv::default()).collect(),
            own: 0,
        }
    }

    /// Makes this (prefix-free) cache a shared, read-only prefix for [`Self::continuing`].
    pub fn freeze(mut self) -> Result<Arc<SequenceCache>> {
        debug_assert!(
            self.prefix.is_none(),
            "a frozen prefix has no prefix itself"
        );
        // Nothing is appended to a frozen cache: the chunks' spare room would be dead weight.
        for layer in &mut self.layers {
            layer.k.shrink_to_fit();
            layer.v.shrink_to_fit();
        }
        Ok(Arc::new(self))
    }

    /// An empty continuation of a [frozen](Self::freeze) `prefix`: positions start after the
    /// prefix's, and attention sees the prefix's keys and values without copying them.
    pub fn continuing(prefix: Arc<SequenceCache>) -> Self {
        debug_assert!(prefix.prefix.is_none());
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

    /// The shared prefix's keys and values for layer `layer` (`(positions, width)` row-major),
    /// when there is a prefix.
    pub(crate) fn prefix_kv(&self, layer: usize) -> Option<(&[f32], &[f32])> {
        self.prefix
            .as_ref()
            .map(|p| (&p.layers[layer].k[..], &p.layers[layer].v[..]))
    }

    /// This sequence's own keys and values for layer `layer`, including rows appended since
    /// the last [`Self::advance`].
    pub(crate) fn own_kv(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.layers[layer].k, &self.layers[layer].v)
    }

    /// Appends one step's keys and values for layer `layer`: `rows` rows each, row-major.
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32], rows: usize) {
        debug_assert!(rows > 0 && k.len() == v.len() && k.len().is_multiple_of(rows));
        let LayerKv { k: ks, v: vs } = &mut self.layers[layer];
        if ks.len() + k.len() > ks.capacity() {
            // Grow by whole chunks of positions, as a fixed-size buffer would.
            let width = k.len() / rows;
            let positions = (ks.len() + k.len()).div_ceil(width);
            let target = positions.div_ceil(CHUNK) * CHUNK * width;
            ks.reserve_exact(target - ks.len());
            vs.reserve_exact(target - vs.len());
        }
        ks.extend_from_slice(k);
        vs.extend_from_slice(v);
    }

    /// Records that `n` positions were appended to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.own += n;
    }
}
