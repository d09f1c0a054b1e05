//! Refusals of a busy server, logged once per burst with a count: a flood of `503`s is one WARN
//! line, not one line per request.

use std::sync::Mutex;
use std::time::Instant;

/// One kind of refusal (a full queue, too many bodies in memory).
pub(crate) struct Burst {
    what: &'static str,
    /// What was refused, and how ("request", "refused with 503").
    unit: &'static str,
    outcome: &'static str,
    /// When the burst began and how many requests it refused so far.
    state: Mutex<Option<(Instant, usize)>>,
}

impl Burst {
    pub(crate) const fn new(what: &'static str) -> Self {
        Self { what, unit: "request", outcome: "refused with 503", state: Mutex::new(None) }
    }

    /// Connections closed at once, or accepts that failed.
    pub(crate) const fn connections(what: &'static str) -> Self {
        Self { what, unit: "connection", outcome: "not served", state: Mutex::new(None) }
    }

    /// A request was refused: the burst begins or goes on.
    pub(crate) fn refused(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            Some((_, n)) => *n += 1,
            None => *state = Some((Instant::now(), 1)),
        }
    }

    /// A request got in (or the server stops): a burst in progress is over, and said once.
    pub(crate) fn ended(&self) {
        let burst = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((since, n)) = burst {
            let s = if n == 1 { "" } else { "s" };
            tracing::warn!(
                refused = n,
                "{}: {n} {}{s} {} over {:.1} s",
                self.what,
                self.unit,
                self.outcome,
                since.elapsed().as_secs_f64()
            );
        }
    }
}
