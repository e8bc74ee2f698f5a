//! Admission of inference requests, and draining them on shutdown.
//!
//! Every inference request (HTTP `infer` and `/v1/detect`, gRPC ModelInfer) is [`Drain::admit`]ted
//! before it does anything and holds its [`Admitted`] until its answer is ready. On shutdown
//! [`Drain::start`] turns the server not-ready and refuses every later request, while the
//! listeners keep accepting: a load balancer polling `/v2/health/ready` sees 503 (instead of a
//! refused connection, which reads as a crash), and a client on a pooled connection gets a 503 it
//! can retry elsewhere. [`Drain::drained`] completes once the last admitted request is answered;
//! only then do the servers stop accepting.
//!
//! The draining flag and the count live in one `watch` value, changed under its lock: a request
//! is either admitted before draining starts (and counted, so the drain waits for it) or refused,
//! never admitted unseen.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default)]
struct Admissions {
    draining: bool,
    in_flight: usize,
}

/// The server's admissions: whether it still takes requests, and how many it is answering.
#[derive(Debug)]
pub struct Drain {
    state: watch::Sender<Admissions>,
}

/// An admitted request; dropping it marks the request answered.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while this is held"]
pub struct Admitted<'a> {
    drain: &'a Drain,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            state: watch::Sender::new(Admissions::default()),
        }
    }

    /// Admits a request, or `None` once draining has started.
    pub fn admit(&self) -> Option<Admitted<'_>> {
        let admitted = self.state.send_if_modified(|a| {
            if a.draining {
                return false;
            }
            a.in_flight += 1;
            true
        });
        // Not `then_some`: it would build (and drop, counting down) a guard for a refusal too.
        if admitted {
            Some(Admitted { drain: self })
        } else {
            None
        }
    }

    /// Refuses every later request; the admitted ones go on.
    pub fn start(&self) {
        self.state.send_modify(|a| a.draining = true);
    }

    /// Whether the server still takes requests (`/v2/health/ready`, gRPC ServerReady).
    pub fn is_ready(&self) -> bool {
        !self.state.borrow().draining
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.state.borrow().in_flight
    }

    /// Completes when no admitted request is left (at once if none is).
    pub async fn drained(&self) {
        let mut changes = self.state.subscribe();
        // Errs only when the sender is gone, and `self` holds it.
        let _ = changes.wait_for(|a| a.in_flight == 0).await;
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.drain.state.send_modify(|a| a.in_flight -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn draining_refuses_new_requests_and_waits_for_the_admitted_ones() {
        let drain = Drain::new();
        assert!(drain.is_ready());
        let first = drain.admit().expect("admitted before draining");
        let second = drain.admit().expect("admitted before draining");
        drain.start();
        assert!(!drain.is_ready());
        assert!(drain.admit().is_none(), "refused once draining");
        assert_eq!(drain.in_flight(), 2);
        let waiting = drain.drained();
        tokio::pin!(waiting);
        drop(first);
        let early = tokio::time::timeout(Duration::from_millis(20), &mut waiting).await;
        assert!(early.is_err(), "one request is still in flight");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("drained once the last admitted request is answered");
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn with_nothing_in_flight_it_is_drained_at_once() {
        let drain = Drain::new();
        drop(drain.admit());
        drain.start();
        tokio::time::timeout(Duration::from_secs(5), drain.drained())
            .await
            .expect("nothing to wait for");
    }
}
