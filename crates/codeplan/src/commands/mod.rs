//! One module per verb.

pub mod data;
pub mod distill;
pub mod eval;
pub mod generate;
pub mod merge;
pub mod models;
pub mod report;
pub mod run;
mod run_estimate;
mod run_report;
pub mod serve;
pub mod train;
