//! Live progress on a terminal: how many cases are done and which are in
//! flight. Without a terminal, or in CI, the log's one line per event is the
//! progress and this shows nothing.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The live display of a run, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    in_flight: Mutex<BTreeSet<String>>,
}

impl Progress {
    /// A display for `total` boots when `live`, else an inert one.
    pub fn new(total: usize, live: bool) -> Progress {
        let bar = live.then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template("{pos}/{len} cases [{elapsed}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    /// A case began booting.
    pub fn started(&self, case: &str) {
        self.update(|set| {
            set.insert(case.to_string());
        });
    }

    /// A case finished with `verdict` (pass, FAIL or skip).
    pub fn finished(&self, case: &str, verdict: &str) {
        self.update(|set| {
            set.remove(case);
        });
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if verdict == "FAIL" {
                bar.println(format!("FAIL {case}"));
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut BTreeSet<String>)) {
        let Ok(mut set) = self.in_flight.lock() else {
            return;
        };
        change(&mut set);
        if let Some(bar) = &self.bar {
            let names: Vec<&str> = set.iter().map(String::as_str).collect();
            bar.set_message(format!("booting: {}", names.join(", ")));
        }
    }

    /// Removes the display.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
