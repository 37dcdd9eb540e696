//! The metrics log (append-only JSONL, one object per line) and the loss-curve plot.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Result, TrainError};

/// Appends metric records to a JSONL file, flushed line by line.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens (or creates) the log; a last line torn by a crash is cut off first.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        let text = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        if !text.is_empty() && text.last() != Some(&b'\n') {
            let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64)
                .map_err(|e| TrainError::io(path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| TrainError::io(path, e))?;
        }
        Ok(MetricsLog {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Map<String, Value>) -> Result<()> {
        let mut line = serde_json::to_string(record).expect("serialisable");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Every series of a metrics log: name → (step → value), the last record of a step winning
/// (a resumed run logs again the steps after its checkpoint).
pub fn read_series(path: &Path) -> Result<BTreeMap<String, BTreeMap<u64, f64>>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut series: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(step) = record.get("step").and_then(Value::as_u64) else {
            continue;
        };
        for (key, value) in &record {
            if key.contains('/') {
                if let Some(v) = value.as_f64() {
                    series.entry(key.clone()).or_default().insert(step, v);
                }
            }
        }
    }
    Ok(series)
}

/// Draws the loss curves (`train/loss*` and `val/loss*` series) of a metrics log as SVG.
pub fn plot_losses(metrics: &Path, out: &Path, title: &str) -> Result<()> {
    use plotters::prelude::*;
    let series = read_series(metrics)?;
    let curves: Vec<(&String, &BTreeMap<u64, f64>)> = series
        .iter()
        .filter(|(k, v)| k.contains("loss") && !v.is_empty())
        .collect();
    let max_step = curves
        .iter()
        .flat_map(|(_, s)| s.keys())
        .max()
        .copied()
        .unwrap_or(1)
        .max(1);
    let max_loss = curves
        .iter()
        .flat_map(|(_, s)| s.values())
        .fold(0f64, |m, &v| if v.is_finite() { m.max(v) } else { m })
        .max(1e-3);
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(out, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0u64..max_step, 0f64..max_loss * 1.05)?;
        chart
            .configure_mesh()
            .x_desc("update")
            .y_desc("loss")
            .draw()?;
        for (i, (name, points)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.iter().map(|(&s, &v)| (s, v)), color))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| TrainError::Input(format!("{}: could not draw the plot: {e}", out.display())))
}
