//! A lake writer running in the background of a test or a benchmark, over the stack's
//! topics (prefix `totesys`): started, waited for, stopped gracefully or killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_core::MetricSet;
use cdc_kafka::KafkaSettings;
use cdc_lake::{
    FlushPolicy, LakeConfig, LakeError, LakeMetrics, LakeStore, LakeTotals, LakeWriter,
};
use cdc_registry::RegistryClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A lake writer running in the background.
pub struct Writer {
    /// The writer's task: its result is the writer's.
    pub task: JoinHandle<Result<LakeTotals, LakeError>>,
    stop: oneshot::Sender<()>,
    /// The writer's metrics (unregistered).
    pub metrics: LakeMetrics,
}

impl Writer {
    /// Starts a member of consumer group `group` writing the `totesys.*` topics into
    /// `lake`, flushing by `flush`.
    pub async fn start(
        kafka: KafkaSettings,
        registry: Arc<RegistryClient>,
        lake: &LakeStore,
        group: &str,
        flush: FlushPolicy,
    ) -> Writer {
        let config = LakeConfig {
            flush,
            ..LakeConfig::for_prefix(kafka, group, "totesys")
        };
        let metrics = LakeMetrics::unregistered().unwrap();
        let writer = LakeWriter::new(config, lake.clone(), registry, metrics.clone())
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(writer.run(async move {
            let _ = stopped.await;
        }));
        Writer {
            task,
            stop,
            metrics,
        }
    }

    /// Small files, written often: restarts and rebalances fall between and inside them.
    pub fn small_files(max_rows: usize, max_age_ms: u64) -> FlushPolicy {
        FlushPolicy {
            max_rows,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(max_age_ms),
        }
    }

    /// Waits until the group gave this writer partitions.
    pub async fn assigned(&self) {
        let start = Instant::now();
        while self.metrics.partitions_assigned.get() == 0 {
            assert!(!self.task.is_finished(), "lake writer stopped");
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no partitions assigned"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Flushes, commits and leaves the group.
    pub async fn stop(self) -> LakeTotals {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap()
    }

    /// Stops abruptly wherever it is, like a crash.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
