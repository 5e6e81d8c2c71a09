//! The session: the drain before an unmount. An unmount ends
//! the kernel's side of the connection at once, and a reply written after that fails (fuser
//! logs each such failure as an error, on the terminal of `run` or a foreground mount), so the
//! unmount first lets the requests in hand be answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the requests being served must have been none before an unmount goes ahead.
const SETTLE: Duration = Duration::from_millis(5);

/// Counts the requests the daemon has taken and not yet answered, for the drain.
#[derive(Debug, Clone, Default)]
pub struct Serving(Arc<AtomicUsize>);

/// One request being served, counted until dropped.
pub(super) struct Served<'a>(&'a AtomicUsize);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Serving {
    pub(super) fn enter(&self) -> Served<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        Served(&self.0)
    }

    /// Waits, for at most `limit`, until no request has been in hand for a few milliseconds;
    /// whether that happened.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.0.load(Ordering::Acquire) == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE {
                    return true;
                }
            } else {
                idle_since = None;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_unmount_waits_for_the_requests_in_hand() {
        let serving = Serving::default();
        assert!(serving.wait_idle(Duration::from_secs(1)), "nothing in hand");
        let taken = serving.enter();
        assert!(
            !serving.wait_idle(Duration::from_millis(20)),
            "a request in hand was not waited for"
        );
        // Both ends are read on one clock, around the answer itself, so a waiter that starts
        // late (a loaded machine) cannot make the check fail, and one that returns before the
        // answer always does.
        let (idle, answered, returned) = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let idle = serving.wait_idle(Duration::from_secs(5));
                (idle, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(50));
            let answered = Instant::now();
            drop(taken);
            let (idle, returned) = waiter.join().unwrap();
            (idle, answered, returned)
        });
        assert!(idle, "the wait gave up with the request answered");
        assert!(
            returned >= answered + SETTLE,
            "the wait ended {:?} before the request was answered and settled",
            (answered + SETTLE).saturating_duration_since(returned)
        );
    }
}
