//! SCD2 history of the same changes, by our modeler and by `dbt snapshot`, on the same
//! PostgreSQL.
//!
//! ```text
//!   one database on a throwaway cluster:
//!     src.design (totesys DDL) ── round 0: K inserts; rounds 1..R: every row updated ──┐
//!        │                                                                            │
//!        ├─ read back (untimed) ─► one SourceTxn of K changes ─► Modeler::apply  (timed)
//!        │                                      ─► dim_design_history (+ dim_design, mirror)
//!        └─ dbt snapshot, timestamp strategy on last_updated           (timed, whole process
//!                                ─► snapshots.design_history            and dbt's own node time)
//! ```
//!
//! After every round each side applies that round's K changes, N = K·(R+1) in all. At
//! the end both histories must hold N versions, K of them current, and the same
//! versions: key, the three modelled columns, valid from and valid to; anything else
//! fails the run. dbt comes from its own venv (`benches/dbt/setup`, pinned in
//! `benches/dbt/requirements.txt`), which the bench sets up first.
//!
//! Usage:
//! ```text
//! cargo run --release -p cdc-benches --bin modeler-vs-dbt -- [--rows K] [--rounds R]
//! ```
//! Prints a table and one JSON line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cdc_core::{Lsn, MetricSet, Op};
use cdc_modeler::{Change, Modeler, ModelerMetrics, SourceTxn, TextRow};
use cdc_testkit::{PgCluster, TestDb};
use serde_json::json;
use tokio_postgres::Client;

const USAGE: &str = "\
usage: modeler-vs-dbt [--rows K] [--rounds R]

  --rows K     rows of the design table, inserted in round 0 (default 10000)
  --rounds R   rounds that update every row once each (default 10); N = K*(R+1) changes

  dbt runs from ${TOTESYS_CDC_DBT_VENV:-$HOME/.cache/totesys-cdc/dbt-venv}, which
  benches/dbt/setup creates (the bench runs it first).";

/// The dbt project: `dbt_project.yml`, `profiles.yml`, the snapshot and `setup`.
const DBT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dbt");
/// The snapshot node in `run_results.json`.
const DBT_NODE: &str = "snapshot.totesys_bench.design_history";
/// Where dbt writes its history, and where the source rows live.
const DBT_TABLE: &str = "snapshots.design_history";
const SOURCE_SCHEMA: &str = "src";
/// The modeler's history table.
const OUR_TABLE: &str = "dim_design_history";

/// What to run, from the command line.
#[derive(Debug, Clone, Copy)]
struct Options {
    rows: u64,
    rounds: u64,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut options = Options {
            rows: 10_000,
            rounds: 10,
        };
        while let Some(arg) = args.next() {
            let mut value = || -> anyhow::Result<u64> {
                let text = args
                    .next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
                text.parse()
                    .with_context(|| format!("{arg} wants a number, not {text}"))
            };
            match arg.as_str() {
                "--rows" => options.rows = value()?,
                "--rounds" => options.rounds = value()?,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other}\n{USAGE}"),
            }
        }
        ensure!(options.rows > 0, "--rows must be at least 1");
        Ok(options)
    }

    /// Changes each side applies: the initial load and every round's updates.
    fn changes(&self) -> u64 {
        self.rows * (self.rounds + 1)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    let dbt = Dbt::setup()?;

    // A cluster of our own in a temporary directory, stopped at the end.
    let root = tempfile::tempdir()?;
    cdc_testkit::open_to_postgres(root.path())?;
    std::env::set_var("TOTESYS_CDC_TEST_PG_DIR", root.path().join("pg"));
    let db = TestDb::create().await?;
    let cluster: PgCluster = db.cluster.clone();
    let result = compare(&options, &dbt, &db, root.path()).await;
    drop(db);
    cluster.stop()?;
    result
}

/// Both sides, round by round, then the check and the report.
async fn compare(options: &Options, dbt: &Dbt, db: &TestDb, root: &Path) -> anyhow::Result<()> {
    let source = db.client().await?;
    // `timestamp` columns default to now() in the session's zone: make that UTC, the
    // zone commit times are in.
    source.batch_execute("SET TIME ZONE 'UTC'").await?;
    create_source(&source).await?;
    let warehouse = db.client().await?;
    cdc_modeler::warehouse::init(&warehouse).await?;
    let mut modeler = Modeler::without_lake(warehouse, ModelerMetrics::unregistered()?).await?;

    let server: String = source.query_one("SHOW server_version", &[]).await?.get(0);
    println!(
        "PostgreSQL {server} at 127.0.0.1:{}, database {}: the source table {SOURCE_SCHEMA}.design, \
         dbt's {DBT_TABLE} and our {OUR_TABLE} all live in it (one server)",
        db.cluster.port, db.name
    );
    println!(
        "dbt-core {}, dbt-postgres {}, dbt-adapters {} (timestamp strategy on last_updated)",
        dbt.versions.core, dbt.versions.postgres, dbt.versions.adapters
    );
    println!(
        "K = {} rows, R = {} rounds: N = {} changes each side",
        options.rows,
        options.rounds,
        options.changes()
    );
    println!();

    let mut rounds = Vec::new();
    for round in 0..=options.rounds {
        write_round(&source, options.rows, round).await?;
        let txn = source_txn(&source, round).await?;
        ensure!(
            txn.changes.len() as u64 == options.rows,
            "round {round}: read {} source rows, expected {}",
            txn.changes.len(),
            options.rows
        );
        // Alternate who goes first, so neither always finds the other's leftovers
        // (dead tuples, dirty buffers, autovacuum).
        let (ours, theirs) = if round % 2 == 0 {
            let ours = time_ours(&mut modeler, txn).await?;
            (ours, dbt.snapshot(db, root)?)
        } else {
            let theirs = dbt.snapshot(db, root)?;
            (time_ours(&mut modeler, txn).await?, theirs)
        };
        let timed = Round {
            round,
            changes: options.rows,
            ours,
            dbt_wall: theirs.wall,
            dbt_node: theirs.node,
        };
        eprintln!(
            "round {round}: ours {:.3} s, dbt {:.3} s (node {:.3} s)",
            timed.ours.as_secs_f64(),
            timed.dbt_wall.as_secs_f64(),
            timed.dbt_node.as_secs_f64()
        );
        rounds.push(timed);
    }

    let check = check_histories(&source, options).await?;
    report(options, dbt, &rounds, &check);
    Ok(())
}

/// `src.design` with the totesys DDL, as the source spec has it.
async fn create_source(client: &Client) -> anyhow::Result<()> {
    let ddl = cdc_sim::SchemaVariant::default().create_table_sql(cdc_sim::Table::Design);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {SOURCE_SCHEMA}; SET search_path = {SOURCE_SCHEMA}; {ddl}; \
             RESET search_path"
        ))
        .await
        .context("create the source table")?;
    Ok(())
}

/// One source transaction: round 0 inserts `rows` designs, every later round renames
/// every design and sets `last_updated` to the transaction's time.
async fn write_round(client: &Client, rows: u64, round: u64) -> anyhow::Result<()> {
    let sql = if round == 0 {
        format!(
            "INSERT INTO {SOURCE_SCHEMA}.design (design_name, file_location, file_name)
             SELECT 'design-' || i || '-r0', '/usr/share/designs/' || i, 'design-' || i || '.json'
             FROM generate_series(1, {rows}) AS i"
        )
    } else {
        format!(
            "UPDATE {SOURCE_SCHEMA}.design
             SET design_name = 'design-' || design_id || '-r{round}', last_updated = now()"
        )
    };
    let written = client
        .execute(&sql, &[])
        .await
        .with_context(|| format!("write round {round} to the source"))?;
    ensure!(
        written == rows,
        "round {round}: wrote {written} source rows, expected {rows}"
    );
    Ok(())
}

/// The round's changes as capture would deliver them: every row in PostgreSQL's text
/// form, committed at the round's `last_updated`.
async fn source_txn(client: &Client, round: u64) -> anyhow::Result<SourceTxn> {
    let commit_ts_us: i64 = client
        .query_one(
            &format!(
                "SELECT (extract(epoch FROM max(last_updated)) * 1000000)::int8
                 FROM {SOURCE_SCHEMA}.design"
            ),
            &[],
        )
        .await?
        .try_get(0)
        .context("the source table is empty")?;
    let rows = client
        .query(
            &format!(
                "SELECT design_id::text, design_name::text, file_location::text,
                     file_name::text, created_at::text, last_updated::text
                 FROM {SOURCE_SCHEMA}.design ORDER BY design_id"
            ),
            &[],
        )
        .await
        .context("read the source rows")?;
    const COLUMNS: [&str; 6] = [
        "design_id",
        "design_name",
        "file_location",
        "file_name",
        "created_at",
        "last_updated",
    ];
    let op = if round == 0 { Op::Insert } else { Op::Update };
    let changes = rows
        .iter()
        .enumerate()
        .map(|(ordinal, row)| {
            let after: TextRow = COLUMNS
                .iter()
                .enumerate()
                .map(|(i, name)| Ok(((*name).to_owned(), row.try_get(i)?)))
                .collect::<Result<_, tokio_postgres::Error>>()?;
            Ok(Change {
                table: "design".to_owned(),
                op,
                ordinal: ordinal as u64,
                after: Some(after),
                before: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SourceTxn {
        // Any increasing position will do: the modeler only orders by it.
        commit_lsn: Lsn(1000 * (round + 1)),
        commit_ts_us,
        changes,
    })
}

/// Our side: `Modeler::apply` of the round's transaction, nothing else.
async fn time_ours(modeler: &mut Modeler, txn: SourceTxn) -> anyhow::Result<Duration> {
    let started = Instant::now();
    modeler.apply(vec![txn]).await?;
    Ok(started.elapsed())
}

/// dbt from its venv.
struct Dbt {
    bin: PathBuf,
    versions: DbtVersions,
}

struct DbtVersions {
    core: String,
    postgres: String,
    adapters: String,
}

/// One `dbt snapshot`: the whole process, and dbt's own time for the snapshot node.
struct DbtRun {
    wall: Duration,
    node: Duration,
}

impl Dbt {
    /// Runs `benches/dbt/setup` (quiet when the venv is ready) and finds dbt in the venv.
    fn setup() -> anyhow::Result<Dbt> {
        let script = Path::new(DBT_DIR).join("setup");
        let status = Command::new(&script)
            .status()
            .with_context(|| format!("run {}", script.display()))?;
        ensure!(
            status.success(),
            "{} failed ({status}); see the line above",
            script.display()
        );
        let venv = match std::env::var_os("TOTESYS_CDC_DBT_VENV") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".cache/totesys-cdc/dbt-venv"),
        };
        let bin = venv.join("bin/dbt");
        ensure!(
            bin.is_file(),
            "no dbt at {} after {}",
            bin.display(),
            script.display()
        );
        // Not `dbt --version`: it asks PyPI for the latest release.
        let output = Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "from importlib.metadata import version as v; \
                 print(v('dbt-core'), v('dbt-postgres'), v('dbt-adapters'))",
            ])
            .output()
            .context("ask the dbt venv for its versions")?;
        ensure!(
            output.status.success(),
            "cannot read dbt's versions: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let mut words = text.split_whitespace().map(str::to_owned);
        let mut next = || words.next().context("dbt's versions are incomplete");
        let versions = DbtVersions {
            core: next()?,
            postgres: next()?,
            adapters: next()?,
        };
        Ok(Dbt { bin, versions })
    }

    /// Runs `dbt snapshot` against `db`; dbt's target and logs go under `root`.
    fn snapshot(&self, db: &TestDb, root: &Path) -> anyhow::Result<DbtRun> {
        let target = root.join("dbt-target");
        let started = Instant::now();
        let output = Command::new(&self.bin)
            .args([
                "snapshot",
                "--project-dir",
                DBT_DIR,
                "--profiles-dir",
                DBT_DIR,
            ])
            .arg("--target-path")
            .arg(&target)
            .arg("--log-path")
            .arg(root.join("dbt-logs"))
            .env("DBT_BENCH_HOST", "127.0.0.1")
            .env("DBT_BENCH_PORT", db.cluster.port.to_string())
            .env("DBT_BENCH_USER", "postgres")
            .env("DBT_BENCH_PASSWORD", cdc_testkit::SUPERUSER_PASSWORD)
            .env("DBT_BENCH_DBNAME", &db.name)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .output()
            .with_context(|| format!("run {}", self.bin.display()))?;
        let wall = started.elapsed();
        if !output.status.success() {
            bail!(
                "dbt snapshot failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let path = target.join("run_results.json");
        let results: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
        )
        .with_context(|| format!("parse {}", path.display()))?;
        let node = results["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["unique_id"] == DBT_NODE)
            .with_context(|| format!("{} has no result for {DBT_NODE}", path.display()))?;
        ensure!(
            node["status"] == "success",
            "dbt's {DBT_NODE} ended {}: {}",
            node["status"],
            node["message"]
        );
        let secs = node["execution_time"]
            .as_f64()
            .with_context(|| format!("{DBT_NODE} has no execution_time"))?;
        Ok(DbtRun {
            wall,
            node: Duration::from_secs_f64(secs),
        })
    }
}

/// One round's times.
struct Round {
    round: u64,
    changes: u64,
    ours: Duration,
    dbt_wall: Duration,
    dbt_node: Duration,
}

/// Both histories, counted and compared.
struct Check {
    ours_versions: i64,
    ours_current: i64,
    dbt_versions: i64,
    dbt_current: i64,
}

/// Fails unless both tables hold N versions, K current, and the same versions.
async fn check_histories(client: &Client, options: &Options) -> anyhow::Result<Check> {
    let counts = |sql: String| async move {
        let row = client.query_one(&sql, &[]).await?;
        anyhow::Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?))
    };
    let (ours_versions, ours_current) = counts(format!(
        "SELECT count(*), count(*) FILTER (WHERE is_current) FROM {OUR_TABLE}"
    ))
    .await?;
    let (dbt_versions, dbt_current) = counts(format!(
        "SELECT count(*), count(*) FILTER (WHERE dbt_valid_to IS NULL) FROM {DBT_TABLE}"
    ))
    .await?;
    let check = Check {
        ours_versions,
        ours_current,
        dbt_versions,
        dbt_current,
    };
    let (n, k) = (options.changes() as i64, options.rows as i64);
    ensure!(
        (ours_versions, ours_current, dbt_versions, dbt_current) == (n, k, n, k),
        "expected {n} versions, {k} current, on both sides: {OUR_TABLE} has {ours_versions} \
         versions, {ours_current} current; {DBT_TABLE} has {dbt_versions}, {dbt_current} current"
    );
    // dbt's validity is `timestamp` (the source's last_updated, UTC), ours `timestamptz`.
    let (only_ours, only_dbt) = counts(format!(
        "WITH ours AS (
             SELECT design_id, design_name::text, file_location::text, file_name::text,
                 valid_from, valid_to
             FROM {OUR_TABLE}),
         theirs AS (
             SELECT design_id, design_name::text, file_location::text, file_name::text,
                 dbt_valid_from AT TIME ZONE 'UTC', dbt_valid_to AT TIME ZONE 'UTC'
             FROM {DBT_TABLE})
         SELECT (SELECT count(*) FROM (TABLE ours EXCEPT ALL TABLE theirs) a),
             (SELECT count(*) FROM (TABLE theirs EXCEPT ALL TABLE ours) b)"
    ))
    .await?;
    ensure!(
        only_ours == 0 && only_dbt == 0,
        "the histories differ: {only_ours} versions only in {OUR_TABLE}, {only_dbt} only in \
         {DBT_TABLE} (key, design_name, file_location, file_name, valid from, valid to)"
    );
    Ok(check)
}

/// Prints the table and the JSON line.
fn report(options: &Options, dbt: &Dbt, rounds: &[Round], check: &Check) {
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "{:<7} {:>8} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "round", "changes", "ours", "dbt wall", "dbt node", "wall / ours", "node / ours"
    );
    let row = |name: &str, changes: u64, ours: f64, wall: f64, node: f64| {
        println!(
            "{name:<7} {changes:>8} {ours:>8.3} s {wall:>8.3} s {node:>8.3} s {:>11.1} {:>11.1}",
            wall / ours,
            node / ours
        );
    };
    for r in rounds {
        row(
            &r.round.to_string(),
            r.changes,
            secs(r.ours),
            secs(r.dbt_wall),
            secs(r.dbt_node),
        );
    }
    let ours: f64 = rounds.iter().map(|r| secs(r.ours)).sum();
    let wall: f64 = rounds.iter().map(|r| secs(r.dbt_wall)).sum();
    let node: f64 = rounds.iter().map(|r| secs(r.dbt_node)).sum();
    let n = options.changes();
    row("total", n, ours, wall, node);
    println!(
        "changes/s: ours {:.0}, dbt wall {:.0}, dbt node {:.0}",
        n as f64 / ours,
        n as f64 / wall,
        n as f64 / node
    );
    println!(
        "checked: {} versions, {} current on both sides, the same versions (key, columns, \
         valid from/to)",
        check.ours_versions, check.ours_current
    );
    println!(
        "{}",
        json!({
            "bench": "modeler-vs-dbt",
            "rows": options.rows,
            "rounds": options.rounds,
            "changes": n,
            "dbt_core": dbt.versions.core,
            "dbt_postgres": dbt.versions.postgres,
            "dbt_adapters": dbt.versions.adapters,
            "ours_secs": ours,
            "dbt_wall_secs": wall,
            "dbt_node_secs": node,
            "dbt_wall_over_ours": wall / ours,
            "dbt_node_over_ours": node / ours,
            "versions": check.dbt_versions,
            "current": check.dbt_current,
            "rounds_secs": rounds.iter().map(|r| json!({
                "round": r.round,
                "ours": secs(r.ours),
                "dbt_wall": secs(r.dbt_wall),
                "dbt_node": secs(r.dbt_node),
            })).collect::<Vec<_>>(),
        })
    );
}
