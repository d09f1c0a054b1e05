//! Admission control and cancellation: a bounded queue of work units, a bound on request bodies held
//! in memory, and the ticket that tells queued work its request is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// A pool of units (queued chunks, or body bytes) taken at once or not at all: a full pool answers at
/// once, so no request waits longer than its client would.
pub(crate) struct Pool {
    units: Arc<Semaphore>,
    capacity: usize,
}

/// Why [`Pool::try_take`] refused.
pub(crate) enum Refused {
    /// More units than the whole pool holds: this request can never fit.
    TooLarge,
    /// The pool is busy right now.
    Full,
}

impl Pool {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Self { units: Arc::new(Semaphore::new(capacity)), capacity }
    }

    pub(crate) fn try_take(&self, n: usize) -> std::result::Result<OwnedSemaphorePermit, Refused> {
        if n > self.capacity {
            return Err(Refused::TooLarge);
        }
        // At least one unit, so that even free work counts as in flight.
        let n = n.max(1) as u32;
        self.units.clone().try_acquire_many_owned(n).map_err(|_| Refused::Full)
    }

    /// `n` more units into `held`, at once or not at all.
    pub(crate) fn try_add(
        &self,
        held: &mut OwnedSemaphorePermit,
        n: usize,
    ) -> std::result::Result<(), Refused> {
        if n == 0 {
            return Ok(());
        }
        if held.num_permits() + n > self.capacity {
            return Err(Refused::TooLarge);
        }
        let more = self.units.clone().try_acquire_many_owned(n as u32).map_err(|_| Refused::Full)?;
        held.merge(more);
        Ok(())
    }

    pub(crate) fn in_use(&self) -> usize {
        self.capacity - self.units.available_permits()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

/// One request's claim on the model: cancelled when its client leaves, its deadline passes, or the
/// server's grace period ends. Work checks it before every tokenization and forward pass.
pub(crate) struct Ticket {
    cancelled: AtomicBool,
    deadline: Instant,
    server_stopping: Arc<AtomicBool>,
}

impl Ticket {
    pub(crate) fn new(deadline: Instant, server_stopping: Arc<AtomicBool>) -> Self {
        Self { cancelled: AtomicBool::new(false), deadline, server_stopping }
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            || self.server_stopping.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
    }

    /// `Err` once the work should stop; the caller learns why from the request's own state.
    pub(crate) fn check(&self) -> Result<()> {
        match self.is_cancelled() {
            true => Err(Error::Unavailable("request cancelled".into())),
            false => Ok(()),
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Cancels its ticket when dropped: a handler future dropped because its client disconnected (or
/// done) stops the work it queued.
pub(crate) struct CancelOnDrop(pub(crate) Arc<Ticket>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_pool_refuses_at_once_and_recovers() {
        let pool = Pool::new(4);
        let a = pool.try_take(3).ok().unwrap();
        assert!(matches!(pool.try_take(2), Err(Refused::Full)));
        assert!(matches!(pool.try_take(5), Err(Refused::TooLarge)));
        assert_eq!(pool.in_use(), 3);
        drop(a);
        assert!(pool.try_take(4).is_ok());
    }

    #[test]
    fn a_ticket_is_cancelled_by_its_guard_its_deadline_or_the_server() {
        let stopping = Arc::new(AtomicBool::new(false));
        let later = Instant::now() + Duration::from_secs(60);
        let t = Arc::new(Ticket::new(later, stopping.clone()));
        assert!(t.check().is_ok());
        drop(CancelOnDrop(t.clone()));
        assert!(t.is_cancelled());
        assert!(Ticket::new(Instant::now(), stopping.clone()).is_cancelled());
        let t = Ticket::new(later, stopping.clone());
        stopping.store(true, Ordering::Relaxed);
        assert!(t.check().is_err());
    }
}
