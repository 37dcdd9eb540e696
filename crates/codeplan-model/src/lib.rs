//! codeplan's model runtime: loading GGUF and Hugging Face models, tokenizers, chat templates
//! and batched generation on candle.
//!
//! - [`model::Model`] is a loaded model (decoder, tokenizer, chat template) with text-level
//!   generation; [`solve`] samples programs for problems into a samples file.
//! - [`decoder::Decoder`] runs the Llama-family network ([`arch`] maps each family's metadata
//!   onto one [`DecoderConfig`]); [`batch::Batch`] decodes many sequences together.

pub mod arch;
pub mod batch;
pub mod cache;
pub mod chat;
pub mod config;
pub mod decoder;
pub mod device;
pub mod error;
pub mod fetch;
pub mod generate;
pub mod kernels;
pub mod load;
pub mod model;
pub mod registry;
pub mod sampling;
pub mod solve;
pub mod store;
pub mod text;
pub mod tokenizer;
pub mod weights;

pub use batch::{Batch, Event, FinishReason, PromptRequest, SeqId, Timings};
pub use config::{DecoderConfig, RopeStyle};
pub use decoder::{Decoder, Segment};
pub use device::Placement;
pub use error::{ModelError, Result};
pub use generate::{generate_tokens, Control, TokenCompletion};
pub use load::{load_gguf, load_gguf_on, load_hf_dir, load_hf_dir_on, load_text_side};
pub use sampling::{Sampler, SamplingParams};
pub use weights::{Precision, WeightSource};
