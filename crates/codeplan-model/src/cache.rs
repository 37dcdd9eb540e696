//! Per-sequence key/value cache, optionally continuing a shared, frozen prefix.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::kv_cache::Cache;

use crate::error::Result;

/// A layer's keys and values as tensors, `(positions, kv_heads · head_dim)` each.
pub(crate) type KvTensors = (Tensor, Tensor);

/// Positions reserved at a time, so that a decode step writes one row instead of growing the
/// buffer (and copying the history) on every step.
const CHUNK: usize = 256;

/// One layer's keys and values, `(positions, kv_heads · head_dim)` row-major: the layout the
/// key/value projections produce, so appending a step is one copy of its rows.
#[derive(Debug)]
enum LayerKv {
    /// In plain host memory, read in place by the fused CPU step.
    Host { k: Vec<f32>, v: Vec<f32> },
    /// In tensors on the model's device (a GPU), grown a chunk at a time.
    Device { k: Cache, v: Cache },
}

impl LayerKv {
    fn host() -> Self {
        LayerKv::Host {
            k: Vec::new(),
            v: Vec::new(),
        }
    }

    fn device() -> Self {
        LayerKv::Device {
            k: Cache::new(0, CHUNK),
            v: Cache::new(0, CHUNK),
        }
    }
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
    /// An empty cache in host memory for a model with `num_layers` blocks.
    pub fn new(num_layers: usize) -> Self {
        SequenceCache {
            prefix: None,
            layers: (0..num_layers).map(|_| LayerKv::host()).collect(),
            own: 0,
        }
    }

    /// An empty cache kept in tensors on the model's device (for a model placed on a candle
    /// device: see [`crate::Placement`]).
    pub fn on_device(num_layers: usize) -> Self {
        SequenceCache {
            prefix: None,
            layers: (0..num_layers).map(|_| LayerKv::device()).collect(),
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
            match layer {
                LayerKv::Host { k, v } => {
                    k.shrink_to_fit();
                    v.shrink_to_fit();
                }
                LayerKv::Device { k, v } => {
                    for cache in [k, v] {
                        if let Some(data) = cache.current_data()? {
                            let mut tight = Cache::new(0, data.dim(0)?.max(1));
                            tight.append(&data.contiguous()?)?;
                            *cache = tight;
                        }
                    }
                }
            }
        }
        Ok(Arc::new(self))
    }

    /// An empty continuation of a [frozen](Self::freeze) `prefix`: positions start after the
    /// prefix's, and attention sees the prefix's keys and values without copying them. It is
    /// kept where the prefix is (host memory or the device).
    pub fn continuing(prefix: Arc<SequenceCache>) -> Self {
        debug_assert!(prefix.prefix.is_none());
        let layers = prefix.layers.len();
        let mut cache = match prefix.layers.first() {
            Some(LayerKv::Device { .. }) => SequenceCache::on_device(layers),
            _ => SequenceCache::new(layers),
        };
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

    /// Whether the keys and values are in host memory (the fused CPU step reads them in place)
    /// rather than in tensors on a device.
    pub fn is_host(&self) -> bool {
        !matches!(self.layers.first(), Some(LayerKv::Device { .. }))
    }

    /// The shared prefix's keys and values for layer `layer` (`(positions, width)` row-major),
    /// when there is a prefix. Host caches only.
    pub(crate) fn prefix_kv(&self, layer: usize) -> Option<(&[f32], &[f32])> {
        self.prefix.as_ref().map(|p| p.host_kv(layer))
    }

    /// This sequence's own keys and values for layer `layer`, including rows appended since
    /// the last [`Self::advance`]. Host caches only.
    pub(crate) fn own_kv(&self, layer: usize) -> (&[f32], &[f32]) {
        self.host_kv(layer)
    }

    fn host_kv(&self, layer: usize) -> (&[f32], &[f32]) {
        match &self.layers[layer] {
            LayerKv::Host { k, v } => (k, v),
            LayerKv::Device { .. } => unreachable!("host access to a device cache"),
        }
    }

    /// Appends one step's keys and values for layer `layer`: `rows` rows each, row-major.
    /// Host caches only.
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32], rows: usize) {
        debug_assert!(rows > 0 && k.len() == v.len() && k.len().is_multiple_of(rows));
        let LayerKv::Host { k: ks, v: vs } = &mut self.layers[layer] else {
            unreachable!("host append to a device cache")
        };
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

    /// Appends one step's keys and values `(rows, width)` for layer `layer`, wherever the cache
    /// keeps them.
    pub(crate) fn append_tensors(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<()> {
        match &mut self.layers[layer] {
            LayerKv::Host { .. } => {
                let rows = k.dim(0)?;
                let (k, v) = (k.flatten_all()?.to_vec1()?, v.flatten_all()?.to_vec1()?);
                self.append(layer, &k, &v, rows);
            }
            LayerKv::Device { k: kc, v: vc } => {
                kc.append(&k.contiguous()?)?;
                vc.append(&v.contiguous()?)?;
            }
        }
        Ok(())
    }

    /// Layer `layer`'s keys and values as `(positions, width)` tensors on `device`: the shared
    /// prefix's (if any) and this sequence's own, appended rows included. A device cache gives
    /// views of its tensors; a host cache copies.
    pub(crate) fn tensors(
        &self,
        layer: usize,
        width: usize,
        device: &Device,
    ) -> Result<(Option<KvTensors>, KvTensors)> {
        let prefix = match &self.prefix {
            Some(p) => Some(p.layer_tensors(layer, width, device)?),
            None => None,
        };
        Ok((prefix, self.layer_tensors(layer, width, device)?))
    }

    fn layer_tensors(&self, layer: usize, width: usize, device: &Device) -> Result<KvTensors> {
        match &self.layers[layer] {
            LayerKv::Host { k, v } => {
                let rows = k.len() / width;
                Ok((
                    Tensor::from_slice(k, (rows, width), device)?,
                    Tensor::from_slice(v, (rows, width), device)?,
                ))
            }
            LayerKv::Device { k, v } => {
                let view = |c: &Cache| -> Result<Tensor> {
                    Ok(match c.current_data()? {
                        Some(t) => t,
                        None => Tensor::zeros((0, width), candle_core::DType::F32, device)?,
                    })
                };
                Ok((view(k)?, view(v)?))
            }
        }
    }

    /// Records that `n` positions were appended to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.own += n;
    }
}
