//! A small metrics registry the node agent records into and `/metrics` renders in the
//! Prometheus text format (version 0.0.4), under the kubelet's metric names:
//!
//! - `kubelet_pod_start_duration_seconds` (histogram): from the pod's first sight by the
//!   node to its containers running ([`Metrics::observe_pod_start`]);
//! - `kubelet_runtime_operations_duration_seconds{operation_type}` (histogram),
//!   `kubelet_runtime_operations_total{operation_type}` and
//!   `kubelet_runtime_operations_errors_total{operation_type}`: CRI calls
//!   ([`Metrics::observe_cri_call`], or [`Metrics::time_cri`] around a call);
//! - `kubelet_running_pods` and `kubelet_pod_workers` (gauges): pods with a running
//!   sandbox and pod workers alive ([`Metrics::set_running_pods`],
//!   [`Metrics::set_pod_workers`]);
//! - `kubelet_pod_worker_duration_seconds{operation_type}` (histogram): one sync of a pod
//!   worker ([`Metrics::observe_pod_worker`]).
//!
//! ```
//! use std::time::Duration;
//! use kubelet_lite::metrics::Metrics;
//!
//! let metrics = Metrics::default();
//! metrics.observe_cri_call("run_podsandbox", Duration::from_millis(60), true);
//! metrics.set_pod_workers(3);
//! assert!(metrics.render().contains("kubelet_pod_workers 3\n"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The buckets of the pod start histogram, in seconds (the kubelet's).
const POD_START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0,
    600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// The buckets of the CRI call and pod worker histograms, in seconds (the kubelet's
/// exponential buckets: 5 ms times 2.5 to the power 0 to 13).
const OPERATION_BUCKETS: &[f64] = &[
    0.005,
    0.0125,
    0.03125,
    0.078125,
    0.1953125,
    0.48828125,
    1.220703125,
    3.0517578125,
    7.62939453125,
    19.073486328125,
    47.6837158203125,
    119.20928955078125,
    298.0232238769531,
    745.0580596923828,
];

/// Counts of observations per bucket, their sum and count.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name` with `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let join = |extra: &str| match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{} {count}", join(&format!("le=\"{bound}\"")));
        }
        let _ = writeln!(out, "{name}_bucket{} {}", join("le=\"+Inf\""), self.count);
        let _ = writeln!(out, "{name}_sum{} {}", join(""), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", join(""), self.count);
    }
}

/// Everything recorded, behind one lock (recording is rare and cheap).
#[derive(Debug)]
struct Recorded {
    pod_start: Histogram,
    cri_durations: BTreeMap<String, Histogram>,
    cri_errors: BTreeMap<String, u64>,
    pod_worker: BTreeMap<String, Histogram>,
}

#[derive(Debug)]
struct Inner {
    recorded: Mutex<Recorded>,
    running_pods: AtomicI64,
    pod_workers: AtomicI64,
}

/// The registry; clones share it. See the module documentation for the metrics.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics(Arc::new(Inner {
            recorded: Mutex::new(Recorded {
                pod_start: Histogram::new(POD_START_BUCKETS),
                cri_durations: BTreeMap::new(),
                cri_errors: BTreeMap::new(),
                pod_worker: BTreeMap::new(),
            }),
            running_pods: AtomicI64::new(0),
            pod_workers: AtomicI64::new(0),
        }))
    }
}

impl Metrics {
    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.0.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records how long a pod took to start.
    pub fn observe_pod_start(&self, duration: Duration) {
        self.recorded().pod_start.observe(duration.as_secs_f64());
    }

    /// Records one CRI call of `operation` (the kubelet's names: `run_podsandbox`,
    /// `create_container`, ...): its duration and whether it succeeded.
    pub fn observe_cri_call(&self, operation: &str, duration: Duration, succeeded: bool) {
        let mut recorded = self.recorded();
        recorded
            .cri_durations
            .entry(operation.to_owned())
            .or_insert_with(|| Histogram::new(OPERATION_BUCKETS))
            .observe(duration.as_secs_f64());
        if !succeeded {
            *recorded.cri_errors.entry(operation.to_owned()).or_default() += 1;
        }
    }

    /// Runs `call` and records it as CRI operation `operation`.
    pub async fn time_cri<T, E>(&self, operation: &str, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        self.observe_cri_call(operation, started.elapsed(), result.is_ok());
        result
    }

    /// Records one sync of a pod worker (`operation_type` `create`, `update`, `sync` or
    /// `kill`, as the kubelet labels them).
    pub fn observe_pod_worker(&self, operation: &str, duration: Duration) {
        self.recorded()
            .pod_worker
            .entry(operation.to_owned())
            .or_insert_with(|| Histogram::new(OPERATION_BUCKETS))
            .observe(duration.as_secs_f64());
    }

    /// Sets how many pods have a running sandbox.
    pub fn set_running_pods(&self, count: usize) {
        self.0.running_pods.store(saturate(count), Ordering::Relaxed);
    }

    /// Sets how many pod workers are alive.
    pub fn set_pod_workers(&self, count: usize) {
        self.0.pod_workers.store(saturate(count), Ordering::Relaxed);
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let recorded = self.recorded();
        let mut out = String::new();
        header(
            &mut out,
            "kubelet_pod_start_duration_seconds",
            "histogram",
            "Duration in seconds from a pod's first sight to its containers running.",
        );
        recorded
            .pod_start
            .render(&mut out, "kubelet_pod_start_duration_seconds", "");
        header(
            &mut out,
            "kubelet_runtime_operations_duration_seconds",
            "histogram",
            "Duration in seconds of CRI operations, by operation type.",
        );
        for (operation, histogram) in &recorded.cri_durations {
            histogram.render(
                &mut out,
                "kubelet_runtime_operations_duration_seconds",
                &operation_label(operation),
            );
        }
        header(
            &mut out,
            "kubelet_runtime_operations_total",
            "counter",
            "Cumulative number of CRI operations, by operation type.",
        );
        for (operation, histogram) in &recorded.cri_durations {
            let _ = writeln!(
                out,
                "kubelet_runtime_operations_total{{{}}} {}",
                operation_label(operation),
                histogram.count
            );
        }
        header(
            &mut out,
            "kubelet_runtime_operations_errors_total",
            "counter",
            "Cumulative number of failed CRI operations, by operation type.",
        );
        for (operation, errors) in &recorded.cri_errors {
            let _ = writeln!(
                out,
                "kubelet_runtime_operations_errors_total{{{}}} {errors}",
                operation_label(operation)
            );
        }
        header(
            &mut out,
            "kubelet_pod_worker_duration_seconds",
            "histogram",
            "Duration in seconds of one sync of a pod worker, by operation type.",
        );
        for (operation, histogram) in &recorded.pod_worker {
            histogram.render(
                &mut out,
                "kubelet_pod_worker_duration_seconds",
                &operation_label(operation),
            );
        }
        header(
            &mut out,
            "kubelet_running_pods",
            "gauge",
            "Number of pods with a running sandbox.",
        );
        let _ = writeln!(
            out,
            "kubelet_running_pods {}",
            self.0.running_pods.load(Ordering::Relaxed)
        );
        header(&mut out, "kubelet_pod_workers", "gauge", "Number of pod workers alive.");
        let _ = writeln!(
            out,
            "kubelet_pod_workers {}",
            self.0.pod_workers.load(Ordering::Relaxed)
        );
        out
    }
}

fn saturate(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `operation_type="NAME"`, with the label value escaped as Prometheus requires.
fn operation_label(operation: &str) -> String {
    let escaped = operation
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("operation_type=\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_every_bucket_at_or_above_the_value() {
        let metrics = Metrics::default();
        metrics.observe_pod_start(Duration::from_millis(1500));
        metrics.observe_pod_start(Duration::from_millis(400));
        let text = metrics.render();
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"2\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("kubelet_pod_start_duration_seconds_count 2\n"), "{text}");
    }

    #[tokio::test]
    async fn cri_calls_are_counted_with_their_errors() {
        let metrics = Metrics::default();
        let _ = metrics.time_cri("create_container", async { Ok::<_, ()>(()) }).await;
        let _ = metrics.time_cri("create_container", async { Err::<(), _>(()) }).await;
        let text = metrics.render();
        assert!(
            text.contains("kubelet_runtime_operations_total{operation_type=\"create_container\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_runtime_operations_errors_total{operation_type=\"create_container\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"create_container\",le=\"+Inf\"} 2\n"
        ), "{text}");
    }
}
