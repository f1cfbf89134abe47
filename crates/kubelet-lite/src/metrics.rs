//! What the node agent records, and `/metrics` serves in the Prometheus text format
//! (version 0.0.4, [`CONTENT_TYPE`]) through `prometheus-client`, under the kubelet's
//! metric names:
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

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub use prometheus_text::CONTENT_TYPE;

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

/// The label of the per-operation metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation_type: String,
}

impl Operation {
    fn of(operation: &str) -> Operation {
        Operation {
            operation_type: operation.to_owned(),
        }
    }
}

/// A histogram per operation, all with [`OPERATION_BUCKETS`].
type OperationHistograms = Family<Operation, Histogram, fn() -> Histogram>;

fn operation_histogram() -> Histogram {
    Histogram::new(OPERATION_BUCKETS.iter().copied())
}

/// The metrics, and the registry that renders them in the order of the module
/// documentation.
#[derive(Debug)]
struct Inner {
    registry: Registry,
    pod_start: Histogram,
    cri_durations: OperationHistograms,
    cri_calls: Family<Operation, Counter>,
    cri_errors: Family<Operation, Counter>,
    pod_worker: OperationHistograms,
    running_pods: Gauge,
    pod_workers: Gauge,
}

/// The registry; clones share it. See the module documentation for the metrics.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Metrics {
        let pod_start = Histogram::new(POD_START_BUCKETS.iter().copied());
        let cri_durations = OperationHistograms::new_with_constructor(operation_histogram);
        let cri_calls = Family::default();
        let cri_errors = Family::default();
        let pod_worker = OperationHistograms::new_with_constructor(operation_histogram);
        let running_pods = Gauge::default();
        let pod_workers = Gauge::default();
        // The registry appends a period to each help text; counters get `_total`.
        let mut registry = Registry::default();
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from a pod's first sight to its containers running",
            pod_start.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_duration_seconds",
            "Duration in seconds of CRI operations, by operation type",
            cri_durations.clone(),
        );
        registry.register(
            "kubelet_runtime_operations",
            "Cumulative number of CRI operations, by operation type",
            cri_calls.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_errors",
            "Cumulative number of failed CRI operations, by operation type",
            cri_errors.clone(),
        );
        registry.register(
            "kubelet_pod_worker_duration_seconds",
            "Duration in seconds of one sync of a pod worker, by operation type",
            pod_worker.clone(),
        );
        registry.register(
            "kubelet_running_pods",
            "Number of pods with a running sandbox",
            running_pods.clone(),
        );
        registry.register(
            "kubelet_pod_workers",
            "Number of pod workers alive",
            pod_workers.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            pod_start,
            cri_durations,
            cri_calls,
            cri_errors,
            pod_worker,
            running_pods,
            pod_workers,
        }))
    }
}

impl Metrics {
    /// Records how long a pod took to start.
    pub fn observe_pod_start(&self, duration: Duration) {
        self.0.pod_start.observe(duration.as_secs_f64());
    }

    /// Records one CRI call of `operation` (the kubelet's names: `run_podsandbox`,
    /// `create_container`, ...): its duration and whether it succeeded.
    pub fn observe_cri_call(&self, operation: &str, duration: Duration, succeeded: bool) {
        let operation = Operation::of(operation);
        self.0
            .cri_durations
            .get_or_create(&operation)
            .observe(duration.as_secs_f64());
        self.0.cri_calls.get_or_create(&operation).inc();
        if !succeeded {
            self.0.cri_errors.get_or_create(&operation).inc();
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
        self.0
            .pod_worker
            .get_or_create(&Operation::of(operation))
            .observe(duration.as_secs_f64());
    }

    /// Sets how many pods have a running sandbox.
    pub fn set_running_pods(&self, count: usize) {
        self.0.running_pods.set(saturate(count));
    }

    /// Sets how many pod workers are alive.
    pub fn set_pod_workers(&self, count: usize) {
        self.0.pod_workers.set(saturate(count));
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.0.registry);
        out
    }
}

fn saturate(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
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

    /// As with the kubelet's Go client, a family without samples is left out.
    #[test]
    fn every_metric_is_served_under_the_kubelets_name() {
        let metrics = Metrics::default();
        metrics.observe_cri_call("stop_container", Duration::from_millis(20), false);
        metrics.observe_pod_worker("sync", Duration::from_millis(3));
        metrics.set_running_pods(2);
        let text = metrics.render();
        for line in [
            "# TYPE kubelet_pod_start_duration_seconds histogram\n",
            "# TYPE kubelet_runtime_operations_duration_seconds histogram\n",
            "# TYPE kubelet_runtime_operations_total counter\n",
            "# TYPE kubelet_runtime_operations_errors_total counter\n",
            "kubelet_runtime_operations_errors_total{operation_type=\"stop_container\"} 1\n",
            "# TYPE kubelet_pod_worker_duration_seconds histogram\n",
            "kubelet_pod_worker_duration_seconds_bucket{operation_type=\"sync\",le=\"0.005\"} 1\n",
            "kubelet_pod_worker_duration_seconds_count{operation_type=\"sync\"} 1\n",
            "# HELP kubelet_running_pods Number of pods with a running sandbox.\n",
            "kubelet_running_pods 2\n",
            "kubelet_pod_workers 0\n",
        ] {
            assert!(text.contains(line), "{line:?} is not in:\n{text}");
        }
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
