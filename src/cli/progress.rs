//! A one-line progress report on stderr (items, rate, ETA), only when stderr is a terminal, so
//! logs and pipes stay clean.

use std::io::IsTerminal;

pub struct Progress {
    total: usize,
    done: usize,
    started: std::time::Instant,
    active: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            started: std::time::Instant::now(),
            active: total > 1 && std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, n: usize) {
        self.done += n;
        if self.active {
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            let rate = self.done as f64 / secs;
            let eta = (self.total - self.done.min(self.total)) as f64 / rate.max(1e-9);
            eprint!(
                "\r{}/{} images, {rate:.1}/s, ETA {eta:.0} s   ",
                self.done, self.total
            );
        }
    }

    /// Erases the line so a message can be printed; the next `advance` redraws it.
    pub fn clear(&self) {
        if self.active {
            eprint!("\r{:60}\r", "");
        }
    }

    pub fn finish(&self) {
        self.clear();
    }
}
