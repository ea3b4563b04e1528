//! How a running server stops (README "Rolling restarts"): the phases after
//! SIGTERM or Ctrl-C, and where the stop requests come from.
//!
//! ```text
//! Serving ──stop──▶ Draining ──drain_secs, or stop──▶ Closing ──all done, shutdown_grace_secs, or stop──▶ exit 0
//! ```
//!
//! - **Draining**: `/readyz` answers 503 (`"reason": "draining"`) so load
//!   balancers take the instance out of rotation, but every request is still
//!   served and new connections are still accepted: a balancer that has not
//!   noticed yet loses nothing. Each response carries `Connection: close`, so
//!   a keep-alive client (or a balancer's upstream pool) opens its next
//!   connection elsewhere instead of keeping one that the server will close.
//! - **Closing**: the listeners stop accepting; requests in flight finish
//!   within `server.shutdown_grace_secs`; idle keep-alive connections are
//!   closed. Only a connection idle for the whole drain is still open then
//!   (its client could race the close): clients' keep-alive idle timeouts
//!   shorter than the drain rule that out.
//! - A stop request during the drain skips the rest of it (operator
//!   impatience: a second Ctrl-C); one during the grace period drops the
//!   connections still open.
//!
//! Only tokio and tracing: no poem, no store.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, watch};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Ready; keep-alive as usual.
    Serving,
    /// Stop requested: not ready, still serving, `Connection: close`.
    Draining,
    /// Listeners closed; in-flight requests finishing.
    Closing,
    /// The grace period was cut short: remaining connections are dropped.
    Abandoning,
}

/// The shared phase: the stop sequence sets it, `/readyz` and the accept
/// loops read it. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Lifecycle {
    phase: watch::Sender<Phase>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A lifecycle in [`Phase::Serving`].
    pub fn new() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Serving),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// True from the stop request on: not ready, responses close their connection.
    pub fn is_stopping(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Moves forward to `phase` (never back).
    pub fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let later = phase > *p;
            if later {
                *p = phase;
            }
            later
        });
    }

    /// Resolves once the phase is `phase` or later.
    pub fn reached(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.phase.subscribe();
        async move {
            // The sender lives in `self`, which outlives every accept loop;
            // if it were gone, nothing could advance any more: wait forever.
            if rx.wait_for(|p| *p >= phase).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Stop requests, in order: the first starts the drain, the next ends it
/// early, the one after that ends the grace period early. Each carries a
/// name for the log (`SIGTERM`, `SIGINT`).
pub struct StopRequests {
    /// A one-shot request (a test's future), delivered first.
    first: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Further requests (signals); `None` when there are none.
    rest: Option<mpsc::UnboundedReceiver<&'static str>>,
}

impl StopRequests {
    /// One request, when `stop` resolves; never a second one.
    pub fn once(stop: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            first: Some(Box::pin(stop)),
            rest: None,
        }
    }

    /// Requests sent on the returned sender (tests, signal handlers).
    pub fn channel() -> (mpsc::UnboundedSender<&'static str>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            tx,
            Self {
                first: None,
                rest: Some(rx),
            },
        )
    }

    /// The next request's name; pending forever when no more can come.
    pub async fn next(&mut self) -> &'static str {
        if let Some(first) = self.first.take() {
            first.await;
            return "stop request";
        }
        match self.rest.as_mut() {
            Some(rx) => match rx.recv().await {
                Some(name) => name,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C) as [`StopRequests`], every one of them. On
/// Unix the handlers are installed when this is called, not when the
/// requests are first awaited, so a SIGTERM sent as soon as the server logs
/// `keygate listening` is never lost to the default action (which kills the
/// process without a graceful stop). Call it inside the runtime.
pub fn shutdown_signals() -> StopRequests {
    let (tx, requests) = StopRequests::channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    () = received(term.as_mut()) => "SIGTERM",
                    () = received(int.as_mut()) => "SIGINT",
                };
                if tx.send(name).is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send("Ctrl-C").is_err() {
                break;
            }
        }
    });
    requests
}

/// Resolves when `signal` is delivered; never without a handler.
#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward_and_wake_waiters() {
        let life = Lifecycle::new();
        assert!(!life.is_stopping());
        let closing = tokio::spawn(life.reached(Phase::Closing));
        life.advance(Phase::Draining);
        assert!(life.is_stopping());
        assert!(!closing.is_finished());
        life.advance(Phase::Closing);
        closing.await.unwrap();
        life.advance(Phase::Serving);
        assert_eq!(life.phase(), Phase::Closing, "never back");
        // Already reached: resolves at once.
        life.reached(Phase::Draining).await;
    }

    #[tokio::test]
    async fn stop_requests_arrive_in_order() {
        let (tx, mut stops) = StopRequests::channel();
        tx.send("SIGTERM").unwrap();
        tx.send("SIGINT").unwrap();
        assert_eq!(stops.next().await, "SIGTERM");
        assert_eq!(stops.next().await, "SIGINT");
        let mut once = StopRequests::once(async {});
        assert_eq!(once.next().await, "stop request");
        let second = tokio::time::timeout(std::time::Duration::from_millis(10), once.next());
        assert!(
            second.await.is_err(),
            "a one-shot source sends nothing more"
        );
    }
}
