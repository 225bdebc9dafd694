//! A tally of hostile inputs: each case runs under `catch_unwind` with a clock, must give the
//! outcome it expects (an `Err`, or success for inputs that are odd but harmless) within a
//! time bound, and must not panic. [`Hostile::finish`] prints the counts and the peak resident
//! memory of the process, and fails the test on any panic or unexpected outcome.
//!
//! ```
//! use ember_testing::hostile::Hostile;
//! let mut h = Hostile::new("parse", std::time::Duration::from_secs(1), 1024.0);
//! h.err("not a number", || "x".parse::<u32>());
//! h.ok("a number", || "7".parse::<u32>());
//! h.finish();
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// Peak resident set size of this process in MiB (`VmHWM`; Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// The running tally of one suite.
pub struct Hostile {
    suite: String,
    limit: Duration,
    max_rss_mib: f64,
    cases: usize,
    errs: usize,
    oks: usize,
    slowest: (Duration, String),
    failures: Vec<String>,
}

impl Hostile {
    /// A suite whose cases must each finish within `limit`, and whose process must stay under
    /// `max_rss_mib` of peak resident memory.
    pub fn new(suite: &str, limit: Duration, max_rss_mib: f64) -> Hostile {
        Hostile {
            suite: suite.into(),
            limit,
            max_rss_mib,
            cases: 0,
            errs: 0,
            oks: 0,
            slowest: (Duration::ZERO, String::new()),
            failures: Vec::new(),
        }
    }

    fn run<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        want_err: bool,
        f: impl FnOnce() -> Result<T, E>,
    ) {
        self.cases += 1;
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(f));
        let took = start.elapsed();
        if took > self.slowest.0 {
            self.slowest = (took, name.into());
        }
        if took > self.limit {
            self.failures
                .push(format!("{name}: took {took:?} (limit {:?})", self.limit));
        }
        match outcome {
            Err(_) => self.failures.push(format!("{name}: PANICKED")),
            Ok(Err(e)) => {
                self.errs += 1;
                eprintln!("  {name}: Err: {e}");
                if !want_err {
                    self.failures
                        .push(format!("{name}: expected success, got: {e}"));
                }
            }
            Ok(Ok(_)) => {
                self.oks += 1;
                eprintln!("  {name}: Ok");
                if want_err {
                    self.failures
                        .push(format!("{name}: expected an error, got Ok"));
                }
            }
        }
    }

    /// A case that must return `Err`.
    pub fn err<T, E: std::fmt::Display>(&mut self, name: &str, f: impl FnOnce() -> Result<T, E>) {
        self.run(name, true, f)
    }

    /// A case that is unusual but valid, and must succeed.
    pub fn ok<T, E: std::fmt::Display>(&mut self, name: &str, f: impl FnOnce() -> Result<T, E>) {
        self.run(name, false, f)
    }

    /// Prints `suite: N cases, E Err, K Ok, 0 panics, slowest, peak RSS` and fails on any
    /// panic, unexpected outcome, slow case or excess memory.
    pub fn finish(mut self) {
        let peak = peak_rss_mib();
        if let Some(p) = peak
            && p > self.max_rss_mib
        {
            self.failures.push(format!(
                "peak RSS {p:.0} MiB exceeds {:.0} MiB",
                self.max_rss_mib
            ));
        }
        let panics = self
            .failures
            .iter()
            .filter(|f| f.ends_with("PANICKED"))
            .count();
        eprintln!(
            "HOSTILE {}: {} cases, {} Err, {} Ok, {panics} panics; slowest {:?} ({}); peak RSS {}",
            self.suite,
            self.cases,
            self.errs,
            self.oks,
            self.slowest.0,
            self.slowest.1,
            peak.map_or("n/a".into(), |p| format!("{p:.0} MiB")),
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} problems:\n{}",
            self.suite,
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}
