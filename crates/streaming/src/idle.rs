//! The idle timeout of an upgraded connection: closed after a stretch with no frame read
//! or written, as the kubelet's `StreamIdleTimeout` does (4 hours by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the connection last moved a frame, shared by its reader and writer.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last frame.
    last: Arc<AtomicU64>,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records a frame read or written now.
    pub(crate) fn touch(&self) {
        let elapsed = self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Cancels `gone` once `timeout` passes with no activity, or returns when `gone` is
    /// cancelled by something else. A zero timeout never expires.
    pub(crate) async fn watch(self, timeout: Duration, gone: CancellationToken) {
        if timeout.is_zero() {
            return;
        }
        loop {
            let deadline = self.last() + timeout;
            tokio::select! {
                _ = gone.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => {
                    if self.last() + timeout <= Instant::now() {
                        tracing::debug!(?timeout, "closing idle streaming connection");
                        gone.cancel();
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_a_full_idle_period() {
        let activity = Activity::new();
        let gone = CancellationToken::new();
        let watcher = tokio::spawn(activity.clone().watch(Duration::from_secs(10), gone.clone()));
        tokio::time::sleep(Duration::from_secs(8)).await;
        activity.touch();
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(!gone.is_cancelled(), "activity at 8s pushes the deadline to 18s");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(gone.is_cancelled());
        watcher.await.unwrap();
    }
}
