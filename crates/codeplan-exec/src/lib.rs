//! Sandboxed execution of model-written Python, judged like APPS (`apps`) or strictly
//! (`strict`), with the metrics every codeplan report rests on.

pub mod compare;
pub mod metrics;
