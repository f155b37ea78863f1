//! How progress is shown: bars on a terminal, plain lines otherwise.

use crate::progress::{Reporter, Stage};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Progress bars on stderr.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Stage, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Reporter for Bars {
    fn stage_start(&self, stage: Stage, total: u64) {
        let template = if matches!(stage, Stage::Download | Stage::Upload) {
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}"
        } else {
            "{prefix:>10} [{bar:30}] {pos}/{len} {wide_msg}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(style);
        bar.set_prefix(stage.name());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(stage, bar);
        }
    }

    fn advance(&self, stage: Stage, delta: u64, what: &str) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(b) = bars.get(&stage) {
                b.inc(delta);
                b.set_message(what.to_string());
            }
        }
    }

    fn stage_end(&self, stage: Stage) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(b) = bars.get(&stage) {
                b.finish_with_message("done");
            }
        }
    }

    fn message(&self, text: &str) {
        let _ = self.multi.println(text);
    }
}

/// One line per stage start and end, for logs and CI.
pub struct Lines {
    started: Mutex<HashMap<Stage, Instant>>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            started: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Reporter for Lines {
    fn stage_start(&self, stage: Stage, total: u64) {
        if let Ok(mut s) = self.started.lock() {
            s.insert(stage, Instant::now());
        }
        let unit = if matches!(stage, Stage::Download | Stage::Upload) {
            "bytes"
        } else {
            "items"
        };
        let _ = writeln!(std::io::stderr(), "{}: {total} {unit}", stage.name());
    }

    fn advance(&self, _: Stage, _: u64, _: &str) {}

    fn stage_end(&self, stage: Stage) {
        let secs = self
            .started
            .lock()
            .ok()
            .and_then(|s| s.get(&stage).map(|t| t.elapsed().as_secs_f64()))
            .unwrap_or(0.0);
        let _ = writeln!(std::io::stderr(), "{}: done in {secs:.1}s", stage.name());
    }

    fn message(&self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}
