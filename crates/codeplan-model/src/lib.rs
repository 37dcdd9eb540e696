//! codeplan's model runtime: loading GGUF and Hugging Face models, tokenizers, chat templates
//! and batched generation on candle.

pub mod fetch;
pub mod registry;
pub mod store;
