//! Progress bars for long work (stderr, hidden when not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting samples, with pass count, rate and ETA.
pub fn samples_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} samples \
             ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
