//! The load generator: a fixed number of workers, each with its own
//! keep-alive connection, sending requests back to back for a warm-up and
//! then a measured window. Every loop is bounded in time and in count.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How one scenario is driven.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Workers (= connections), each with one request in flight.
    pub concurrency: usize,
    /// Requests before the measured window are not recorded.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// Upper bound on requests sent, warm-up included.
    pub max_requests: u64,
}

/// What one scenario measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Successful requests completed in the measured window.
    pub ok: u64,
    /// Failed requests (any phase).
    pub errors: u64,
    /// Every request sent, warm-up included (for per-request store calls).
    pub sent: u64,
    /// The measured window's real length in seconds.
    pub secs: f64,
    /// `ok / secs`.
    pub per_sec: f64,
    /// Latency percentiles of the measured requests, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    sent: u64,
    first_error: Option<String>,
    last_end: Option<Instant>,
}

/// Runs `request(worker)` from `plan.concurrency` workers on the current
/// (single-threaded) runtime. `request` returns `Ok(true)` to go on,
/// `Ok(false)` when its work is used up (prepared codes), or an error text.
pub async fn drive<F, Fut>(plan: Plan, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + 'static,
    Fut: Future<Output = Result<bool, String>> + 'static,
{
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop_at = measure_from + plan.window;
    let tally = Rc::new(RefCell::new(Tally::default()));
    let local = tokio::task::LocalSet::new();
    for worker in 0..plan.concurrency {
        let request = request.clone();
        let tally = tally.clone();
        local.spawn_local(async move {
            loop {
                let t0 = Instant::now();
                {
                    let mut t = tally.borrow_mut();
                    if t0 >= stop_at || t.sent >= plan.max_requests {
                        return;
                    }
                    t.sent += 1;
                }
                let result = request(worker).await;
                let t1 = Instant::now();
                let mut t = tally.borrow_mut();
                match result {
                    Ok(more) => {
                        if t0 >= measure_from {
                            let us = (t1 - t0).as_micros().min(u32::MAX as u128) as u32;
                            t.latencies_us.push(us);
                            t.last_end = Some(t.last_end.map_or(t1, |e| e.max(t1)));
                        }
                        if !more {
                            return;
                        }
                    }
                    Err(e) => {
                        t.errors += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(e);
                        }
                        // A broken scenario must not spin: give up after a few.
                        if t.errors > 100 {
                            return;
                        }
                    }
                }
            }
        });
    }
    local.await;
    let mut t = tally.take();
    t.latencies_us.sort_unstable();
    let secs = t.last_end.map_or(0.0, |e| {
        e.saturating_duration_since(measure_from).as_secs_f64()
    });
    let ok = t.latencies_us.len() as u64;
    Outcome {
        ok,
        errors: t.errors,
        sent: t.sent,
        secs,
        per_sec: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
        p50_us: percentile(&t.latencies_us, 0.50),
        p99_us: percentile(&t.latencies_us, 0.99),
        first_error: t.first_error,
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
