//! Our Parquet write rate for N totesys change rows, next to pyarrow writing the same rows alike.
//!
//! ```text
//!   seeded generator ─► N LakeRows of one table (inserts, updates, a few deletes)
//!   ours (a): BatchBuilder::build ─► cdc_lake::encode       rows → RecordBatch → Parquet bytes
//!   ours (b):                        cdc_lake::encode       RecordBatch → Parquet bytes
//!   pyarrow:  our file ─► pq.read_table (untimed) ─► pq.write_table into a BufferOutputStream
//! ```
//!
//! Each is timed best of K runs after one warm-up, in this process (ours) and in the
//! project's Python venv (`benches/lake/pyarrow_write.py`); pyarrow gets the settings
//! `encode` uses, spelled out below, and its per-column choices (which columns have a
//! dictionary, which a non-plain encoding) as read from our file. No database or broker is
//! needed.
//!
//! Usage:
//! ```text
//! cargo run --release -p cdc-benches --bin lake-parquet -- [ROWS] [OPTIONS]
//! ```
//! Prints a table and one JSON line; `--help` lists the options.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use cdc_avro::apache_avro::Schema;
use cdc_avro::{table_from_schemas, DecodedEvent, SourceInfo};
use cdc_core::{Lsn, Op, TableSchema, Value, Xid};
use cdc_lake::{encode, BatchBuilder, LakeRow, ParquetOptions, FIRST_OFFSET_KEY, LAST_OFFSET_KEY};
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::file::properties::{
    DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT, DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT, DEFAULT_PAGE_SIZE,
    DEFAULT_WRITE_BATCH_SIZE,
};
use parquet::file::reader::{FileReader, SerializedFileReader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const USAGE: &str = "\
usage: lake-parquet [ROWS] [OPTIONS]       (ROWS defaults to 200000)

  --table NAME            sales_order (default) or payment
  --runs K                timed runs of each writer, best taken (default 5, after 1 warm-up)
  --seed N                seed of the generated rows (default 1)
  --row-group-rows N      ParquetOptions.row_group_rows (default: the lake's, 131072)
  --zstd-level N          ParquetOptions.zstd_level (default: the lake's, 3)
  --no-pyarrow            time ours only (for profiling)
  --keep PATH             keep our Parquet file at PATH";

/// The pyarrow side, next to this file.
const PYARROW_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lake/pyarrow_write.py");
/// The checked-in Avro schemas the table shapes come from.
const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/avro");
/// 2026-11-21 00:00:00 UTC: when the generated changes start.
const START_US: i64 = 1_795_219_200_000_000;
const DAY_US: i64 = 86_400_000_000;
/// Rows of the table before the first change (the simulator's seed has 300 sales orders).
const EXISTING_ROWS: i32 = 300;

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Options {
    rows: usize,
    table: Totesys,
    runs: usize,
    seed: u64,
    parquet: ParquetOptions,
    pyarrow: bool,
    keep: Option<PathBuf>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut options = Options {
            rows: 200_000,
            table: Totesys::SalesOrder,
            runs: 5,
            seed: 1,
            parquet: ParquetOptions::default(),
            pyarrow: true,
            keep: None,
        };
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--table" => {
                    options.table = match value()?.as_str() {
                        "sales_order" => Totesys::SalesOrder,
                        "payment" => Totesys::Payment,
                        other => bail!("--table: sales_order or payment, not {other}"),
                    }
                }
                "--runs" => options.runs = value()?.parse()?,
                "--seed" => options.seed = value()?.parse()?,
                "--row-group-rows" => options.parquet.row_group_rows = value()?.parse()?,
                "--zstd-level" => options.parquet.zstd_level = value()?.parse()?,
                "--no-pyarrow" => options.pyarrow = false,
                "--keep" => options.keep = Some(value()?.into()),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => {
                    options.rows = other
                        .parse()
                        .with_context(|| format!("unknown argument {other}\n{USAGE}"))?;
                }
            }
        }
        ensure!(options.rows > 0, "ROWS must be at least 1");
        ensure!(options.runs > 0, "--runs must be at least 1");
        Ok(options)
    }

    /// The writer settings pyarrow gets: `encode`'s, parquet-rs's defaults it keeps, and
    /// its per-column choices in our file.
    fn pyarrow_settings(&self, columns: &ColumnChoices) -> serde_json::Value {
        json!({
            "compression": "zstd",
            "compression_level": self.parquet.zstd_level,
            // The leaf columns to dictionary-encode (pyarrow takes a list of those only).
            "use_dictionary": columns.dictionary,
            "column_encoding": columns.encodings,
            "write_statistics": true,
            "row_group_size": self.parquet.row_group_rows,
            "data_page_size": DEFAULT_PAGE_SIZE,
            "dictionary_pagesize_limit": DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT,
            "write_batch_size": DEFAULT_WRITE_BATCH_SIZE,
            "max_rows_per_page": DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT,
            // WriterVersion::PARQUET_1_0 (parquet-rs's default): v1 data pages.
            "data_page_version": "1.0",
            // EnabledStatistics::Page: chunk statistics plus the column and offset indexes.
            "write_page_index": true,
            // ArrowWriter embeds the Arrow schema, stores small decimals as INT32/INT64
            // and names list elements after the Arrow field ("item").
            "store_schema": true,
            "store_decimal_as_integer": true,
            "use_compliant_nested_type": false,
        })
    }
}

/// The totesys tables the bench can generate changes of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Totesys {
    SalesOrder,
    Payment,
}

impl Totesys {
    fn name(self) -> &'static str {
        match self {
            Totesys::SalesOrder => "sales_order",
            Totesys::Payment => "payment",
        }
    }

    /// The table shape from its checked-in key and value schemas.
    fn schema(self) -> anyhow::Result<TableSchema> {
        let read = |suffix: &str| -> anyhow::Result<Schema> {
            let path = Path::new(SCHEMA_DIR).join(format!("{}-{suffix}.avsc", self.name()));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            Schema::parse_str(&text).with_context(|| format!("parse {}", path.display()))
        };
        let (key, value) = (read("key")?, read("value")?);
        let table = table_from_schemas(Some(&key), &value)?;
        ensure!(
            table.columns.len() == 12,
            "{} has {} columns; the generator knows the 12 of the totesys spec",
            table.name,
            table.columns.len()
        );
        Ok(table)
    }

    /// A new row with id `id`, created at `now_us`, in the spec's value ranges.
    fn new_row(self, rng: &mut StdRng, id: i32, now_us: i64) -> Vec<Value> {
        let day = |rng: &mut StdRng, days: std::ops::RangeInclusive<i64>| {
            Value::Text(date_text(now_us + rng.random_range(days) * DAY_US))
        };
        let int = |rng: &mut StdRng, range: std::ops::RangeInclusive<i32>| {
            Value::Int32(rng.random_range(range))
        };
        match self {
            Totesys::SalesOrder => vec![
                Value::Int32(id),
                int(rng, 1..=60),
                int(rng, 1..=20),
                int(rng, 1..=20),
                int(rng, 1_000..=100_000),
                Value::Numeric(cents_text(rng.random_range(200..=400))),
                int(rng, 1..=3),
                day(rng, 1..=21),
                day(rng, 0..=30),
                int(rng, 1..=30),
                Value::Timestamp(now_us),
                Value::Timestamp(now_us),
            ],
            Totesys::Payment => {
                let sale = rng.random_bool(0.77);
                let amount = if sale {
                    rng.random_range(1_000..=100_000_i64) * rng.random_range(200..=400)
                } else {
                    rng.random_range(1..=1_000_i64) * rng.random_range(300..=100_000)
                };
                vec![
                    Value::Int32(id),
                    Value::Int32(id + 117),
                    int(rng, 1..=20),
                    Value::Numeric(cents_text(amount.clamp(100, 100_000_000))),
                    int(rng, 1..=3),
                    Value::Int32(if sale { 1 } else { 3 }),
                    Value::Bool(false),
                    day(rng, 0..=30),
                    int(rng, 10_000_000..=99_999_999),
                    int(rng, 10_000_000..=99_999_999),
                    Value::Timestamp(now_us),
                    Value::Timestamp(now_us),
                ]
            }
        }
    }

    /// What the simulator's updates do: a sales order's units sold and/or unit price
    /// change, a payment becomes paid; nine in ten set `last_updated`.
    fn update(self, rng: &mut StdRng, row: &mut [Value], now_us: i64) {
        match self {
            Totesys::SalesOrder => {
                let which = rng.random_range(0..3);
                if which != 1 {
                    row[4] = Value::Int32(rng.random_range(1_000..=100_000));
                }
                if which != 0 {
                    row[5] = Value::Numeric(cents_text(rng.random_range(200..=400)));
                }
            }
            Totesys::Payment => row[6] = Value::Bool(true),
        }
        if rng.random_bool(0.9) {
            row[11] = Value::Timestamp(now_us);
        }
    }
}

/// Days since 1970-01-01 of `us` as `YYYY-MM-DD` (proleptic Gregorian).
fn date_text(us: i64) -> String {
    let z = us.div_euclid(DAY_US) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Hundredths as PostgreSQL prints a two-place numeric: `3.47`.
fn cents_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// How many changes of each kind were generated.
#[derive(Debug, Default, Clone, Copy)]
struct Mix {
    inserts: usize,
    updates: usize,
    deletes: usize,
}

/// `rows` changes of `table` as the lake reads them from one topic partition: 72 %
/// inserts, 24 % updates, 4 % deletes (the simulator's overall mix), in transactions of
/// 1–16 of this table's changes, about 1,000 changes a second. Updates carry no old row
/// and deletes only the key (`REPLICA IDENTITY DEFAULT`).
fn generate(table: Totesys, schema: &TableSchema, rows: usize, seed: u64) -> (Vec<LakeRow>, Mix) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now_us = START_US;
    let mut live: Vec<Vec<Value>> = (1..=EXISTING_ROWS)
        .map(|id| table.new_row(&mut rng, id, now_us - DAY_US))
        .collect();
    let mut next_id = EXISTING_ROWS + 1;
    let (mut lsn, mut xid) = (0x1_6B00_0000_u64, 48_000_u32);
    let mut mix = Mix::default();
    let mut out = Vec::with_capacity(rows);
    while out.len() < rows {
        let size = rng.random_range(1..=16).min(rows - out.len());
        xid += 1;
        let mut changes = Vec::with_capacity(size);
        for _ in 0..size {
            now_us += rng.random_range(0..=2_000);
            lsn += rng.random_range(200..=1_000);
            let draw = rng.random_range(0..100);
            let (op, before, after) = if draw < 72 || live.len() < 10 {
                mix.inserts += 1;
                let row = table.new_row(&mut rng, next_id, now_us);
                next_id += 1;
                live.push(row.clone());
                (Op::Insert, None, Some(row))
            } else if draw < 96 {
                mix.updates += 1;
                // Recent rows are the ones that change.
                let at = live.len() - 1 - rng.random_range(0..live.len().min(2_000));
                table.update(&mut rng, &mut live[at], now_us);
                (Op::Update, None, Some(live[at].clone()))
            } else {
                mix.deletes += 1;
                let row = live.swap_remove(rng.random_range(0..live.len()));
                let key = row
                    .into_iter()
                    .zip(&schema.columns)
                    .map(|(v, c)| if c.replica_identity { v } else { Value::Null })
                    .collect();
                (Op::Delete, Some(key), None)
            };
            changes.push((op, before, after, lsn));
        }
        let commit_lsn = lsn + 56;
        let commit_ts_us = now_us + 150;
        for (i, (op, before, after, change_lsn)) in changes.into_iter().enumerate() {
            let offset = i64::try_from(out.len()).unwrap_or(i64::MAX);
            out.push(LakeRow {
                event: DecodedEvent {
                    op,
                    before_identity_only: op == Op::Delete,
                    before,
                    after,
                    source: SourceInfo {
                        lsn: Lsn(change_lsn),
                        commit_lsn: Lsn(commit_lsn),
                        xid: Some(Xid(xid)),
                        commit_ts_us,
                        // Other tables' changes of the transaction sit in between.
                        ordinal: 3 * i as u64 + 1,
                        snapshot: false,
                        schema: schema.name.schema.clone(),
                        table: schema.name.name.clone(),
                    },
                    ts_us: commit_ts_us + rng.random_range(2_000..=40_000),
                },
                partition: 0,
                offset,
            });
        }
    }
    (out, mix)
}

/// What `encode` chose per leaf column of a file it wrote (the columns' dotted paths).
#[derive(Debug, Default)]
struct ColumnChoices {
    /// The dictionary-encoded columns: those with a dictionary page.
    dictionary: Vec<String>,
    /// The other columns' encoding, where it is not plain.
    encodings: serde_json::Map<String, serde_json::Value>,
    /// The columns without a dictionary (booleans, which never have one, left out), with
    /// their encoding when it is not plain: for the report.
    without_dictionary: Vec<String>,
}

impl ColumnChoices {
    /// The choices in the file at `path` (in its first row group; they are per column).
    fn of(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        let reader = SerializedFileReader::new(file)?;
        let mut choices = ColumnChoices::default();
        for chunk in reader.metadata().row_group(0).columns() {
            let path = chunk.column_path().string();
            if chunk.dictionary_page_offset().is_some() {
                choices.dictionary.push(path);
                continue;
            }
            // RLE: the levels (and booleans).
            let encoding = chunk
                .encodings()
                .find(|e| !matches!(e, Encoding::PLAIN | Encoding::RLE));
            if let Some(encoding) = encoding {
                choices
                    .encodings
                    .insert(path.clone(), json!(format!("{encoding:?}")));
            }
            if chunk.column_type() != PhysicalType::BOOLEAN {
                choices.without_dictionary.push(match encoding {
                    Some(encoding) => format!("{path} ({encoding:?})"),
                    None => path,
                });
            }
        }
        Ok(choices)
    }
}

/// Best and all timings of one writer, seconds.
#[derive(Debug, Clone)]
struct Timing {
    runs: Vec<f64>,
}

impl Timing {
    fn best(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Ours, (a): build and encode per run, both parts timed.
struct Full {
    total: Timing,
    build: Timing,
    encode: Timing,
}

fn time_full(
    builder: &BatchBuilder,
    rows: &[LakeRow],
    options: &ParquetOptions,
    metadata: &[(String, String)],
    runs: usize,
) -> anyhow::Result<Full> {
    let mut full = Full {
        total: Timing { runs: Vec::new() },
        build: Timing { runs: Vec::new() },
        encode: Timing { runs: Vec::new() },
    };
    for run in 0..=runs {
        let start = Instant::now();
        let batch = builder.build(rows)?;
        let built = Instant::now();
        let file = encode(&batch, options, metadata.to_vec())?;
        let done = Instant::now();
        drop((batch, file));
        if run > 0 {
            full.total.runs.push((done - start).as_secs_f64());
            full.build.runs.push((built - start).as_secs_f64());
            full.encode.runs.push((done - built).as_secs_f64());
        }
    }
    Ok(full)
}

/// What the Python side reports.
#[derive(Debug)]
struct Pyarrow {
    version: String,
    timing: Timing,
    cpu_secs: f64,
    bytes: u64,
    row_groups: u64,
    same_rows: bool,
}

fn run_pyarrow(file: &Path, options: &Options, columns: &ColumnChoices) -> anyhow::Result<Pyarrow> {
    let python = cdc_testkit::python::venv_python()?;
    let output = Command::new(&python)
        .arg(PYARROW_SCRIPT)
        .arg(file)
        .arg(options.runs.to_string())
        .arg(options.pyarrow_settings(columns).to_string())
        .output()
        .with_context(|| format!("run {} {PYARROW_SCRIPT}", python.display()))?;
    ensure!(
        output.status.success(),
        "{PYARROW_SCRIPT} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "{PYARROW_SCRIPT} printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let number = |key: &str| {
        report[key]
            .as_f64()
            .with_context(|| format!("{PYARROW_SCRIPT}: no number {key} in {report}"))
    };
    let runs = report["runs_secs"]
        .as_array()
        .context("no runs_secs")?
        .iter()
        .map(|v| v.as_f64().context("runs_secs holds a non-number"))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    ensure!(!runs.is_empty(), "{PYARROW_SCRIPT} reported no runs");
    Ok(Pyarrow {
        version: report["pyarrow"].as_str().unwrap_or("?").to_owned(),
        timing: Timing { runs },
        cpu_secs: number("best_cpu_secs")?,
        bytes: number("bytes")? as u64,
        row_groups: number("row_groups")? as u64,
        same_rows: report["same_rows"].as_bool().unwrap_or(false),
    })
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    let schema = options.table.schema()?;
    let started = Instant::now();
    let (rows, mix) = generate(options.table, &schema, options.rows, options.seed);
    let generate_secs = started.elapsed().as_secs_f64();
    let builder = BatchBuilder::new(schema);
    let metadata = vec![
        (FIRST_OFFSET_KEY.to_owned(), "0".to_owned()),
        (LAST_OFFSET_KEY.to_owned(), (rows.len() - 1).to_string()),
    ];
    eprintln!(
        "ours (a): rows → RecordBatch → Parquet, {} runs…",
        options.runs + 1
    );
    let full = time_full(&builder, &rows, &options.parquet, &metadata, options.runs)?;
    let batch = builder.build(&rows)?;
    eprintln!(
        "ours (b): RecordBatch → Parquet, {} runs…",
        options.runs + 1
    );
    let mut encode_only = Timing { runs: Vec::new() };
    let mut file = encode(&batch, &options.parquet, metadata.clone())?;
    for _ in 0..options.runs {
        let start = Instant::now();
        file = encode(&batch, &options.parquet, metadata.clone())?;
        encode_only.runs.push(start.elapsed().as_secs_f64());
    }
    let dir = tempfile::tempdir()?;
    let path = match &options.keep {
        Some(path) => path.clone(),
        None => dir.path().join(format!("{}.parquet", options.table.name())),
    };
    std::fs::write(&path, &file).with_context(|| format!("write {}", path.display()))?;
    let choices = ColumnChoices::of(&path)?;
    let pyarrow = if options.pyarrow {
        eprintln!("pyarrow: pq.write_table, {} runs…", options.runs + 1);
        Some(run_pyarrow(&path, &options, &choices)?)
    } else {
        None
    };
    // The bytes the arrays hold (as pyarrow's `Table.nbytes`), not their capacity.
    let arrow_bytes = batch
        .columns()
        .iter()
        .map(|column| column.to_data().get_slice_memory_size())
        .sum::<Result<usize, _>>()?;
    report(&Report {
        options: &options,
        mix,
        generate_secs,
        arrow_bytes,
        columns: batch.num_columns(),
        file_bytes: file.len(),
        full: &full,
        encode_only: &encode_only,
        choices: &choices,
        pyarrow: pyarrow.as_ref(),
    });
    if let Some(p) = &pyarrow {
        ensure!(
            p.same_rows,
            "pyarrow's file does not read back as the rows it was given"
        );
    }
    Ok(())
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Report<'a> {
    options: &'a Options,
    mix: Mix,
    generate_secs: f64,
    arrow_bytes: usize,
    columns: usize,
    file_bytes: usize,
    full: &'a Full,
    encode_only: &'a Timing,
    choices: &'a ColumnChoices,
    pyarrow: Option<&'a Pyarrow>,
}

fn report(r: &Report<'_>) {
    let o = r.options;
    let rows = o.rows as f64;
    let mb = |bytes: f64| bytes / 1e6;
    println!(
        "{} {} changes ({} inserts, {} updates, {} deletes), seed {}, generated in {:.2} s",
        o.rows,
        o.table.name(),
        r.mix.inserts,
        r.mix.updates,
        r.mix.deletes,
        o.seed,
        r.generate_secs
    );
    println!(
        "settings: zstd level {}, dictionary {}, statistics per page (column + offset index), \
         row groups of {} rows, data pages ≤ {} B / {} rows, dictionary pages ≤ {} B, v1 pages",
        o.parquet.zstd_level,
        if o.parquet.dictionary { "on" } else { "off" },
        o.parquet.row_group_rows,
        DEFAULT_PAGE_SIZE,
        DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT,
        DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT
    );
    println!(
        "no dictionary (booleans aside; pyarrow alike): {}",
        r.choices.without_dictionary.join(", ")
    );
    println!(
        "Arrow data: {:.1} MB in {} columns (our RecordBatch); best of {} runs after 1 warm-up",
        mb(r.arrow_bytes as f64),
        r.columns,
        o.runs
    );
    println!();
    println!(
        "{:<40} {:>8} {:>10} {:>8} {:>8} {:>8} {:>10}",
        "writer", "best", "rows/s", "in MB/s", "out MB/s", "file MB", "vs pyarrow"
    );
    let pyarrow_secs = r.pyarrow.map(|p| p.timing.best());
    // `bytes`: the file written, for whole writers; none for the parts of (a).
    let line = |name: &str, secs: f64, bytes: Option<f64>| {
        let text = format!(
            "{name:<40} {secs:>6.3} s {:>10} {:>8.1} {:>8} {:>8} {:>10}",
            thousands(rows / secs),
            mb(r.arrow_bytes as f64) / secs,
            bytes.map_or_else(String::new, |b| format!("{:.1}", mb(b) / secs)),
            bytes.map_or_else(String::new, |b| format!("{:.2}", mb(b))),
            match (bytes, pyarrow_secs) {
                (Some(_), Some(p)) => format!("{:.2}", p / secs),
                _ => String::new(),
            },
        );
        println!("{}", text.trim_end());
    };
    let file = Some(r.file_bytes as f64);
    line(
        "ours (a) rows → RecordBatch → Parquet",
        r.full.total.best(),
        file,
    );
    line(
        "  BatchBuilder::build (its best)",
        r.full.build.best(),
        None,
    );
    line("  encode (its best)", r.full.encode.best(), None);
    line("ours (b) RecordBatch → Parquet", r.encode_only.best(), file);
    if let Some(p) = r.pyarrow {
        line(
            &format!("pyarrow {} pq.write_table", p.version),
            p.timing.best(),
            Some(p.bytes as f64),
        );
        println!(
            "pyarrow: {:.2} CPU s in its best run ({:.2} cores), {} row groups, \
             reads back as the same rows: {}",
            p.cpu_secs,
            p.cpu_secs / p.timing.best(),
            p.row_groups,
            p.same_rows
        );
    }
    println!("\"vs pyarrow\" is our rate over pyarrow's (above 1: we are faster)");
    println!(
        "{}",
        json!({
            "bench": "lake_parquet", "table": o.table.name(), "rows": o.rows, "seed": o.seed,
            "inserts": r.mix.inserts, "updates": r.mix.updates, "deletes": r.mix.deletes,
            "zstd_level": o.parquet.zstd_level, "row_group_rows": o.parquet.row_group_rows,
            "arrow_bytes": r.arrow_bytes, "runs": o.runs,
            "ours": {
                "file_bytes": r.file_bytes,
                "full_secs": r.full.total.runs, "build_secs": r.full.build.runs,
                "encode_in_full_secs": r.full.encode.runs, "encode_secs": r.encode_only.runs,
                "full_rows_per_sec": rows / r.full.total.best(),
                "encode_rows_per_sec": rows / r.encode_only.best(),
            },
            "pyarrow": r.pyarrow.map(|p| json!({
                "version": p.version, "file_bytes": p.bytes, "secs": p.timing.runs,
                "rows_per_sec": rows / p.timing.best(), "best_cpu_secs": p.cpu_secs,
                "row_groups": p.row_groups,
            })),
            "ratio_encode": pyarrow_secs.map(|p| p / r.encode_only.best()),
            "ratio_full": pyarrow_secs.map(|p| p / r.full.total.best()),
        })
    );
}
