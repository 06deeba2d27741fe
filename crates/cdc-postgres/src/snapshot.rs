//! The initial snapshot: every published table copied from the slot's exported
//! snapshot, in parallel connections, with bounded memory.
//!
//! ```text
//!   CREATE_REPLICATION_SLOT … (SNAPSHOT 'export') ─► snapshot "0000000A-1"
//!        │  (the replication connection stays idle so the snapshot stays valid)
//!        ├─ worker 1: BEGIN REPEATABLE READ; SET TRANSACTION SNAPSHOT …; COPY t1 TO STDOUT
//!        ├─ worker 2: … t2                        ──► bounded channel ──► sink (op r)
//!        └─ worker n: … tn
//!   every row durable ─► checkpoint "snapshot done" ─► START_REPLICATION at the consistent point
//! ```

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use cdc_core::{ChangeEvent, Lsn, Op, Position, Row, TableName, TableSchema, TransactionInfo};
use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use crate::connection::{ConnectParams, SESSION_SETTINGS};
use crate::error::SourceError;
use crate::rows::text_row;
use crate::setup::{quote_ident, quote_literal};
use crate::sink::{ChangeSink, DurabilityTracker};
use crate::text_value::split_copy_text_row;

/// How the snapshot runs.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Tables copied at once, each on its own connection.
    pub parallelism: usize,
    /// Rows per batch handed to the sink.
    pub batch_size: usize,
    /// Batches written to the sink but not yet durable before the snapshot waits.
    pub max_in_flight: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            parallelism: 4,
            batch_size: 5_000,
            max_in_flight: 16,
        }
    }
}

/// Snapshot progress, reported per batch.
#[derive(Debug, Clone)]
pub enum SnapshotProgress {
    /// A table's copy started; `estimated_rows` from the planner's statistics.
    TableStarted {
        /// The table.
        table: TableName,
        /// `pg_class.reltuples`, when known.
        estimated_rows: Option<u64>,
    },
    /// Rows of a table were handed to the sink.
    Rows {
        /// The table.
        table: TableName,
        /// Rows in this batch.
        rows: u64,
    },
    /// A table's copy finished.
    TableDone {
        /// The table.
        table: TableName,
        /// Rows copied in total.
        rows: u64,
    },
}

/// A callback receiving [`SnapshotProgress`].
pub type ProgressFn = Arc<dyn Fn(SnapshotProgress) + Send + Sync>;

enum WorkerMessage {
    Rows(Arc<TableSchema>, Vec<Row>),
    Progress(SnapshotProgress),
}

/// Copies `tables` as of `snapshot_name` into the sink; returns the number of rows.
/// Waits until every row is durable. The rows carry `as_of_micros` as their commit time:
/// a time on the server's clock before the snapshot's consistent point.
#[allow(clippy::too_many_arguments)]
pub async fn copy_tables<S: ChangeSink>(
    params: &ConnectParams,
    snapshot_name: &str,
    consistent_point: Lsn,
    as_of_micros: i64,
    tables: &[TableName],
    sink: &mut S,
    options: &SnapshotOptions,
    progress: Option<ProgressFn>,
) -> Result<u64, SourceError> {
    let (tx, mut rx) =
        mpsc::channel::<Result<WorkerMessage, SourceError>>(options.parallelism.max(1) * 2);
    let permits = Arc::new(Semaphore::new(options.parallelism.max(1)));
    let mut workers = tokio::task::JoinSet::new();
    for table in tables {
        let table = table.clone();
        let tx = tx.clone();
        let permits = permits.clone();
        let params = params.clone();
        let snapshot = snapshot_name.to_owned();
        let batch_size = options.batch_size.max(1);
        workers.spawn(async move {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            if let Err(e) = copy_table(&params, &snapshot, &table, batch_size, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
    }
    drop(tx);

    let transaction = TransactionInfo {
        xid: None,
        commit_lsn: consistent_point,
        end_lsn: consistent_point,
        commit_time_micros: as_of_micros,
    };
    let mut tracker = DurabilityTracker::new(Lsn::ZERO);
    let mut ordinal = 0u64;
    let mut total = 0u64;
    while let Some(message) = rx.recv().await {
        match message? {
            WorkerMessage::Progress(p) => {
                if let Some(progress) = &progress {
                    progress(p);
                }
            }
            WorkerMessage::Rows(table, rows) => {
                let count = rows.len() as u64;
                let batch: Vec<ChangeEvent> = rows
                    .into_iter()
                    .map(|row| {
                        let event = ChangeEvent {
                            position: Position {
                                commit_lsn: consistent_point,
                                ordinal,
                            },
                            transaction,
                            lsn: consistent_point,
                            snapshot: true,
                            table: table.clone(),
                            op: Op::Read,
                            before: None,
                            after: Some(row),
                            truncate: None,
                        };
                        ordinal += 1;
                        event
                    })
                    .collect();
                if tracker.in_flight() >= options.max_in_flight.max(1) {
                    sink.flush().await?;
                }
                while tracker.in_flight() >= options.max_in_flight.max(1) {
                    tracker.wait_oldest().await?;
                }
                let ack = sink.write(batch).await?;
                tracker.push(None, ack);
                tracker.poll()?;
                total += count;
                if let Some(progress) = &progress {
                    progress(SnapshotProgress::Rows {
                        table: table.name.clone(),
                        rows: count,
                    });
                }
            }
        }
    }
    while let Some(joined) = workers.join_next().await {
        joined.map_err(|e| SourceError::Protocol(format!("snapshot worker failed: {e}")))?;
    }
    // The snapshot's rows are one pseudo transaction at the consistent point; its end
    // tells readers of the transaction topic how many rows each table has.
    let ack = sink.commit(&transaction, total).await?;
    tracker.push(None, ack);
    sink.flush().await?;
    while tracker.in_flight() > 0 {
        tracker.wait_oldest().await?;
    }
    Ok(total)
}

async fn copy_table(
    params: &ConnectParams,
    snapshot: &str,
    table: &TableName,
    batch_size: usize,
    tx: &mpsc::Sender<Result<WorkerMessage, SourceError>>,
) -> Result<(), SourceError> {
    let client =
        crate::connection::connect_regular(params, &format!("the snapshot of {table}")).await?;
    let settings: String = SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("SET {name} = {};", quote_literal(value)))
        .collect();
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}; {settings}",
            quote_literal(snapshot)
        ))
        .await
        .map_err(SourceError::sql(format!("join exported snapshot {snapshot} for {table}")))?;
    let id = crate::catalog::table_id(&client, table).await?;
    let schema = Arc::new(crate::catalog::table_schema(&client, id).await?);
    let estimate = client
        .query_one(
            "SELECT reltuples::float8 FROM pg_class WHERE oid = $1",
            &[&id.0],
        )
        .await
        .map_err(SourceError::sql(format!("estimate size of {table}")))?
        .get::<_, f64>(0);
    let started = SnapshotProgress::TableStarted {
        table: table.clone(),
        estimated_rows: (estimate >= 0.0).then_some(estimate as u64),
    };
    if tx.send(Ok(WorkerMessage::Progress(started))).await.is_err() {
        return Ok(());
    }
    let columns: Vec<String> = schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let copy = format!(
        "COPY {}.{} ({}) TO STDOUT",
        quote_ident(&table.schema),
        quote_ident(&table.name),
        columns.join(", ")
    );
    let stream = client
        .copy_out(copy.as_str())
        .await
        .map_err(SourceError::sql(format!("copy {table}")))?;
    futures_util::pin_mut!(stream);
    let mut pending = BytesMut::new();
    let mut batch = Vec::with_capacity(batch_size);
    let mut rows = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(SourceError::sql(format!("copy {table}")))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line = pending.split_to(end + 1);
            let fields =
                split_copy_text_row(&line[..end]).map_err(|source| SourceError::Value {
                    table: table.to_string(),
                    column: "(COPY row)".into(),
                    source,
                })?;
            batch.push(text_row(&schema, fields)?);
            if batch.len() >= batch_size {
                rows += batch.len() as u64;
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                if tx
                    .send(Ok(WorkerMessage::Rows(schema.clone(), full)))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
        if pending.remaining() > 64 * 1024 * 1024 {
            return Err(SourceError::Protocol(format!(
                "a COPY row of {table} exceeds 64 MiB without a newline"
            )));
        }
    }
    if !pending.is_empty() {
        return Err(SourceError::Protocol(format!(
            "COPY of {table} ended mid-row"
        )));
    }
    rows += batch.len() as u64;
    if !batch.is_empty()
        && tx
            .send(Ok(WorkerMessage::Rows(schema.clone(), batch)))
            .await
            .is_err()
    {
        return Ok(());
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(SourceError::sql(format!("finish snapshot of {table}")))?;
    let _ = tx
        .send(Ok(WorkerMessage::Progress(SnapshotProgress::TableDone {
            table: table.clone(),
            rows,
        })))
        .await;
    Ok(())
}
