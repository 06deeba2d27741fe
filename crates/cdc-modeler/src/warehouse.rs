//! The warehouse side: its DDL, the modeler's state read back from it, and a [`Plan`]
//! written in one transaction together with the new watermark.

use std::collections::HashMap;

use cdc_core::Lsn;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

use crate::plan::{row_from_json, row_json, Close, DimRow, Model, Plan, Stamp};
use crate::spec::{Column, Dim, Fact};
use crate::ModelerError;

/// The warehouse DDL, in the order `init` applies it (each file idempotent).
pub const DDL: [(&str, &str); 3] = [
    (
        "001_star_schemas.sql",
        include_str!("../../../schemas/warehouse/001_star_schemas.sql"),
    ),
    (
        "002_history.sql",
        include_str!("../../../schemas/warehouse/002_history.sql"),
    ),
    (
        "003_calendar.sql",
        include_str!("../../../schemas/warehouse/003_calendar.sql"),
    ),
];

/// Applies the warehouse DDL: the star schemas, history, calendar and bookkeeping.
pub async fn init(client: &Client) -> Result<(), ModelerError> {
    for (name, sql) in DDL {
        client
            .batch_execute(sql)
            .await
            .map_err(ModelerError::sql(format!("apply {name}")))?;
    }
    Ok(())
}

/// What the warehouse has applied: the last source transaction's commit LSN.
pub async fn watermark(client: &Client) -> Result<Lsn, ModelerError> {
    let row = client
        .query_opt("SELECT commit_lsn::text FROM totesys_cdc.applied", &[])
        .await
        .map_err(ModelerError::sql(
            "read totesys_cdc.applied (has `init` run?)",
        ))?;
    match row {
        None => Ok(Lsn::ZERO),
        Some(row) => parse_lsn(row.get(0)),
    }
}

fn parse_lsn(text: &str) -> Result<Lsn, ModelerError> {
    text.parse()
        .map_err(|_| ModelerError::Warehouse(format!("the warehouse holds a bad LSN {text:?}")))
}

/// How fresh the warehouse is (for `status`).
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// The commit LSN of the last source transaction applied.
    pub watermark: Lsn,
    /// That transaction's source commit time, as PostgreSQL prints it.
    pub source_commit: Option<String>,
    /// Seconds from that commit to now: the freshness while changes flow.
    pub commit_age_secs: Option<f64>,
    /// Seconds since the modeler last applied.
    pub applied_age_secs: f64,
}

/// The warehouse's freshness; `None` while nothing has been applied.
pub async fn freshness(client: &Client) -> Result<Option<Freshness>, ModelerError> {
    let row = client
        .query_opt(
            "SELECT commit_lsn::text, source_commit_ts::text,
                    extract(epoch FROM now() - source_commit_ts)::float8,
                    extract(epoch FROM now() - applied_at)::float8
               FROM totesys_cdc.applied",
            &[],
        )
        .await
        .map_err(ModelerError::sql(
            "read totesys_cdc.applied (has `init` run?)",
        ))?;
    row.map(|row| {
        Ok(Freshness {
            watermark: parse_lsn(row.get(0))?,
            source_commit: row.get(1),
            commit_age_secs: row.get(2),
            applied_age_secs: row.get(3),
        })
    })
    .transpose()
}

/// What the connected role may do in the warehouse, against what the modeler needs
/// (the grants docs/warehouse.md lists; for `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Whether `init` has run (`totesys_cdc.applied` exists); nothing else is read when not.
    pub initialised: bool,
    /// Tables of `public` and `totesys_cdc` lacking SELECT, INSERT, UPDATE or DELETE.
    pub lacking: Vec<String>,
    /// Whether the role may run `totesys_cdc.add_dates(date[])`.
    pub can_add_dates: bool,
}

impl Access {
    /// Whether the modeler can run with this role.
    pub fn sufficient(&self) -> bool {
        self.initialised && self.lacking.is_empty() && self.can_add_dates
    }
}

/// Reads the connected role's privileges in the warehouse.
pub async fn access(client: &Client) -> Result<Access, ModelerError> {
    let initialised: bool = client
        .query_one("SELECT to_regclass('totesys_cdc.applied') IS NOT NULL", &[])
        .await
        .map_err(ModelerError::sql("look for the warehouse's tables"))?
        .get(0);
    if !initialised {
        return Ok(Access {
            initialised,
            lacking: Vec::new(),
            can_add_dates: false,
        });
    }
    let lacking = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('public', 'totesys_cdc') AND c.relkind IN ('r', 'p')
                AND NOT has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE')
              ORDER BY 1",
            &[],
        )
        .await
        .map_err(ModelerError::sql("check the table privileges"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let can_add_dates: bool = client
        .query_one(
            "SELECT has_function_privilege('totesys_cdc.add_dates(date[])', 'EXECUTE')",
            &[],
        )
        .await
        .map_err(ModelerError::sql(
            "check the privilege on totesys_cdc.add_dates",
        ))?
        .get(0);
    Ok(Access {
        initialised,
        lacking,
        can_add_dates,
    })
}

/// The modeler's state as the warehouse holds it.
pub async fn load_model(client: &Client) -> Result<Model, ModelerError> {
    let mut mirrors: HashMap<String, HashMap<i64, crate::source::TextRow>> = HashMap::new();
    for row in client
        .query(
            "SELECT source_table, key, row FROM totesys_cdc.source_rows WHERE source_table = ANY($1)",
            &[&crate::spec::JOINED.map(str::to_owned).to_vec()],
        )
        .await
        .map_err(ModelerError::sql("read totesys_cdc.source_rows"))?
    {
        let (table, key, json): (String, i64, serde_json::Value) =
            (row.get(0), row.get(1), row.get(2));
        let parsed = row_from_json(&json).ok_or_else(|| {
            ModelerError::Warehouse(format!("source_rows {table}/{key} is not a JSON object"))
        })?;
        mirrors.entry(table).or_default().insert(key, parsed);
    }
    let mut dims: HashMap<Dim, HashMap<i64, DimRow>> = HashMap::new();
    for dim in Dim::ALL {
        let columns: Vec<String> = dim
            .columns()
            .iter()
            .map(|c| format!("{}::text", quote(c.name)))
            .collect();
        let sql = format!(
            "SELECT {}::bigint, inferred, {} FROM {} WHERE is_current",
            quote(dim.key()),
            columns.join(", "),
            quote(&dim.history_table())
        );
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(ModelerError::sql(format!("read {}", dim.history_table())))?;
        let current = dims.entry(dim).or_default();
        for row in rows {
            let values = (2..row.len())
                .map(|i| row.get::<_, Option<String>>(i))
                .collect();
            current.insert(
                row.get(0),
                DimRow {
                    values,
                    inferred: row.get(1),
                },
            );
        }
    }
    Ok(Model::new(mirrors, dims))
}

/// `name` as a quoted SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn ts_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        .unwrap_or_else(|| "epoch".to_owned())
}

/// Text arrays, one per column, from rows of values.
fn transpose(
    rows: impl Iterator<Item = Vec<Option<String>>>,
    width: usize,
) -> Vec<Vec<Option<String>>> {
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); width];
    for row in rows {
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    columns
}

/// Runs `sql` with `params` in `txn`, naming `what` on failure.
async fn exec(
    txn: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<u64, ModelerError> {
    txn.execute(sql, params)
        .await
        .map_err(ModelerError::sql(what.to_owned()))
}

/// Writes `plan` and the watermark it reaches in one warehouse transaction. Fails,
/// writing nothing, when the warehouse's watermark is no longer `expected` (another
/// modeler applied in the meantime).
pub async fn apply(client: &mut Client, plan: &Plan, expected: Lsn) -> Result<(), ModelerError> {
    let Some(watermark) = plan.watermark else {
        return Ok(());
    };
    let txn = client
        .transaction()
        .await
        .map_err(ModelerError::sql("begin the apply"))?;
    let held = txn
        .query_opt(
            "SELECT commit_lsn::text FROM totesys_cdc.applied FOR UPDATE",
            &[],
        )
        .await
        .map_err(ModelerError::sql("lock totesys_cdc.applied"))?;
    let held = match held {
        Some(row) => parse_lsn(row.get(0))?,
        None => Lsn::ZERO,
    };
    if held != expected {
        return Err(ModelerError::Fenced { expected, held });
    }
    write_mirrors(&txn, plan).await?;
    write_dims(&txn, plan).await?;
    if !plan.dates.is_empty() {
        let dates: Vec<String> = plan.dates.iter().cloned().collect();
        exec(
            &txn,
            "SELECT totesys_cdc.add_dates($1::text[]::date[])",
            &[&dates],
            "add dates to dim_date",
        )
        .await?;
    }
    write_facts(&txn, plan).await?;
    write_repairs(&txn, plan).await?;
    exec(
        &txn,
        "INSERT INTO totesys_cdc.applied (id, commit_lsn, source_commit_ts, applied_at)
         VALUES (true, $1::text::pg_lsn, $2::text::timestamptz, now())
         ON CONFLICT (id) DO UPDATE SET commit_lsn = EXCLUDED.commit_lsn,
             source_commit_ts = EXCLUDED.source_commit_ts, applied_at = EXCLUDED.applied_at",
        &[&watermark.commit_lsn.to_string(), &ts_text(watermark.ts_us)],
        "record the applied watermark",
    )
    .await?;
    txn.commit()
        .await
        .map_err(ModelerError::sql("commit the apply"))
}

async fn write_mirrors(txn: &Transaction<'_>, plan: &Plan) -> Result<(), ModelerError> {
    let truncated: Vec<String> = plan.mirror_truncated.iter().cloned().collect();
    if !truncated.is_empty() {
        exec(
            txn,
            "DELETE FROM totesys_cdc.source_rows WHERE source_table = ANY($1)",
            &[&truncated],
            "empty truncated mirrors",
        )
        .await?;
    }
    let (mut gone_tables, mut gone_keys) = (Vec::new(), Vec::new());
    let (mut tables, mut keys, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for ((table, key), row) in &plan.mirror {
        match row {
            None => {
                gone_tables.push(table.clone());
                gone_keys.push(*key);
            }
            Some(row) => {
                tables.push(table.clone());
                keys.push(*key);
                rows.push(row_json(row).to_string());
            }
        }
    }
    if !gone_keys.is_empty() {
        exec(
            txn,
            "DELETE FROM totesys_cdc.source_rows s USING unnest($1::text[], $2::int8[]) AS g(t, k)
             WHERE s.source_table = g.t AND s.key = g.k",
            &[&gone_tables, &gone_keys],
            "delete mirrored rows",
        )
        .await?;
    }
    if !keys.is_empty() {
        exec(
            txn,
            "INSERT INTO totesys_cdc.source_rows (source_table, key, row)
             SELECT t, k, r::jsonb FROM unnest($1::text[], $2::int8[], $3::text[]) AS u(t, k, r)
             ON CONFLICT (source_table, key) DO UPDATE SET row = EXCLUDED.row",
            &[&tables, &keys, &rows],
            "upsert mirrored rows",
        )
        .await?;
    }
    Ok(())
}

/// Closes the current version of each key in `closes` (`table`'s `key` column).
async fn close_current<T>(
    txn: &Transaction<'_>,
    table: &str,
    key: &str,
    closes: &[&Close<T>],
) -> Result<(), ModelerError> {
    if closes.is_empty() {
        return Ok(());
    }
    let keys: Vec<i64> = closes.iter().map(|c| c.key).collect();
    let ts: Vec<String> = closes.iter().map(|c| ts_text(c.at.ts_us)).collect();
    let lsns: Vec<String> = closes.iter().map(|c| c.at.commit_lsn.to_string()).collect();
    exec(
        txn,
        &format!(
            "UPDATE {t} h SET valid_to = c.ts::timestamptz, is_current = false,
                 closed_commit_lsn = c.lsn::pg_lsn
             FROM unnest($1::int8[], $2::text[], $3::text[]) AS c(k, ts, lsn)
             WHERE h.{k} = c.k AND h.is_current",
            t = quote(table),
            k = quote(key)
        ),
        &[&keys, &ts, &lsns],
        &format!("close versions in {table}"),
    )
    .await?;
    Ok(())
}

/// The validity columns of new versions, as parameter arrays.
struct Validity {
    from: Vec<String>,
    to: Vec<Option<String>>,
    lsn: Vec<String>,
    ordinal: Vec<i64>,
    closed: Vec<Option<String>>,
}

impl Validity {
    fn of(versions: impl Iterator<Item = (Stamp, Option<Stamp>)>) -> Validity {
        let mut v = Validity {
            from: Vec::new(),
            to: Vec::new(),
            lsn: Vec::new(),
            ordinal: Vec::new(),
            closed: Vec::new(),
        };
        for (at, closed) in versions {
            v.from.push(ts_text(at.ts_us));
            v.to.push(closed.map(|c| ts_text(c.ts_us)));
            v.lsn.push(at.commit_lsn.to_string());
            v.ordinal.push(at.ordinal as i64);
            v.closed.push(closed.map(|c| c.commit_lsn.to_string()));
        }
        v
    }

    /// The five arrays as parameters, in the order of `validity_sql`.
    fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.from, &self.to, &self.lsn, &self.ordinal, &self.closed]
    }
}

/// Columns and select expressions of the validity arrays, bound from parameter `$first`:
/// (`valid_from, valid_to, …`, `vf::timestamptz, …`, `$n::text[], …`, `vf, vt, …`).
fn validity_sql(first: usize) -> (String, String, String, String) {
    (
        "valid_from, valid_to, is_current, source_commit_lsn, source_ordinal, closed_commit_lsn"
            .into(),
        "vf::timestamptz, vt::timestamptz, vt IS NULL, lsn::pg_lsn, ord, cl::pg_lsn".into(),
        format!(
            "${}::text[], ${}::text[], ${}::text[], ${}::int8[], ${}::text[]",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4
        ),
        "vf, vt, lsn, ord, cl".into(),
    )
}

/// Contract columns as SQL pieces for `INSERT … SELECT … FROM unnest(…)`, the text arrays
/// bound from parameter `$first`: (names, casts, arrays, aliases).
fn columns_sql(columns: &[Column], first: usize) -> (String, String, String, String) {
    let names: Vec<String> = columns.iter().map(|c| quote(c.name)).collect();
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("c{i}::{}", c.sql_type))
        .collect();
    let arrays: Vec<String> = (0..columns.len())
        .map(|i| format!("${}::text[]", first + i))
        .collect();
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    (
        names.join(", "),
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", "),
    )
}

async fn write_dims(txn: &Transaction<'_>, plan: &Plan) -> Result<(), ModelerError> {
    for dim in Dim::ALL {
        let history = dim.history_table();
        let closes: Vec<_> = plan.dim_closes.iter().filter(|c| c.target == dim).collect();
        close_current(txn, &history, dim.key(), &closes).await?;
        let versions: Vec<_> = plan.dim_versions.iter().filter(|v| v.dim == dim).collect();
        if !versions.is_empty() {
            let n = dim.columns().len();
            let keys: Vec<i64> = versions.iter().map(|v| v.key).collect();
            let columns = transpose(versions.iter().map(|v| v.row.values.clone()), n);
            let inferred: Vec<bool> = versions.iter().map(|v| v.row.inferred).collect();
            let validity = Validity::of(versions.iter().map(|v| (v.at, v.closed)));
            let (names, casts, arrays, aliases) = columns_sql(dim.columns(), 2);
            let (v_names, v_casts, v_arrays, v_aliases) = validity_sql(n + 3);
            let sql = format!(
                "INSERT INTO {h} ({key}, {names}, inferred, {v_names})
                 SELECT k, {casts}, inf, {v_casts}
                 FROM unnest($1::int8[], {arrays}, ${inf}::bool[], {v_arrays})
                     AS u(k, {aliases}, inf, {v_aliases})",
                h = quote(&history),
                key = quote(dim.key()),
                inf = n + 2,
            );
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&keys];
            params.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
            params.push(&inferred);
            params.extend(validity.params());
            exec(
                txn,
                &sql,
                &params,
                &format!("insert versions into {history}"),
            )
            .await?;
        }
        write_current(txn, plan, dim).await?;
    }
    Ok(())
}

/// The contract table: each touched key's final row, or none.
async fn write_current(txn: &Transaction<'_>, plan: &Plan, dim: Dim) -> Result<(), ModelerError> {
    let table = quote(dim.table());
    let key = quote(dim.key());
    let touched = plan.dim_current.range((dim, i64::MIN)..=(dim, i64::MAX));
    let (mut gone, mut keys, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for ((_, k), row) in touched {
        match row {
            None => gone.push(*k),
            Some(row) => {
                keys.push(*k);
                rows.push(row.values.clone());
            }
        }
    }
    if !gone.is_empty() {
        exec(
            txn,
            &format!("DELETE FROM {table} WHERE {key} = ANY($1::int8[])"),
            &[&gone],
            &format!("delete from {}", dim.table()),
        )
        .await?;
    }
    if keys.is_empty() {
        return Ok(());
    }
    let columns = transpose(rows.into_iter(), dim.columns().len());
    let (names, casts, arrays, aliases) = columns_sql(dim.columns(), 2);
    let updates: Vec<String> = dim
        .columns()
        .iter()
        .map(|c| format!("{n} = EXCLUDED.{n}", n = quote(c.name)))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({key}, {names})
         SELECT k, {casts} FROM unnest($1::int8[], {arrays}) AS u(k, {aliases})
         ON CONFLICT ({key}) DO UPDATE SET {updates}",
        updates = updates.join(", "),
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&keys];
    params.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
    exec(txn, &sql, &params, &format!("upsert {}", dim.table())).await?;
    Ok(())
}

async fn write_facts(txn: &Transaction<'_>, plan: &Plan) -> Result<(), ModelerError> {
    for fact in Fact::ALL {
        let version = fact.version_table();
        let closes: Vec<_> = plan
            .fact_closes
            .iter()
            .filter(|c| c.target == fact)
            .collect();
        close_current(txn, &version, fact.key(), &closes).await?;
        for truncate in plan.fact_truncates.iter().filter(|c| c.target == fact) {
            exec(
                txn,
                &format!(
                    "UPDATE {} SET valid_to = $1::text::timestamptz, is_current = false,
                         closed_commit_lsn = $2::text::pg_lsn
                     WHERE is_current",
                    quote(&version)
                ),
                &[
                    &ts_text(truncate.at.ts_us),
                    &truncate.at.commit_lsn.to_string(),
                ],
                &format!("close every version in {version}"),
            )
            .await?;
        }
        let versions: Vec<_> = plan
            .fact_versions
            .iter()
            .filter(|v| v.fact == fact)
            .collect();
        if versions.is_empty() {
            continue;
        }
        let mut ids: Vec<i32> = txn
            .query(
                "SELECT nextval(pg_get_serial_sequence($1, $2))::int FROM generate_series(1, $3::int)",
                &[&fact.table(), &fact.record_id(), &(versions.len() as i32)],
            )
            .await
            .map_err(ModelerError::sql(format!("allocate {} ids", fact.record_id())))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort_unstable();
        let contract: Vec<Column> = fact.columns().iter().map(|(c, _)| *c).collect();
        let columns = transpose(versions.iter().map(|v| v.values.clone()), contract.len());
        let (names, casts, arrays, aliases) = columns_sql(&contract, 2);
        let record = quote(fact.record_id());
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids];
        params.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
        exec(
            txn,
            &format!(
                "INSERT INTO {table} ({record}, {names})
                 SELECT id, {casts} FROM unnest($1::int4[], {arrays}) AS u(id, {aliases})",
                table = quote(fact.table()),
            ),
            &params,
            &format!("insert into {}", fact.table()),
        )
        .await?;
        let keys: Vec<i64> = versions.iter().map(|v| v.key).collect();
        let validity = Validity::of(versions.iter().map(|v| (v.at, v.closed)));
        let (v_names, v_casts, v_arrays, v_aliases) = validity_sql(3);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids, &keys];
        params.extend(validity.params());
        exec(
            txn,
            &format!(
                "INSERT INTO {v} ({record}, {key}, {v_names})
                 SELECT id, k, {v_casts}
                 FROM unnest($1::int4[], $2::int8[], {v_arrays}) AS u(id, k, {v_aliases})",
                v = quote(&version),
                key = quote(fact.key()),
            ),
            &params,
            &format!("insert into {version}"),
        )
        .await?;
    }
    Ok(())
}

async fn write_repairs(txn: &Transaction<'_>, plan: &Plan) -> Result<(), ModelerError> {
    if plan.repairs.is_empty() {
        return Ok(());
    }
    let tables: Vec<String> = plan.repairs.iter().map(|r| r.table.clone()).collect();
    let lsns: Vec<String> = plan
        .repairs
        .iter()
        .map(|r| r.at.commit_lsn.to_string())
        .collect();
    let ordinals: Vec<i64> = plan.repairs.iter().map(|r| r.at.ordinal as i64).collect();
    let reasons: Vec<String> = plan.repairs.iter().map(|r| r.reason.to_owned()).collect();
    let rows: Vec<String> = plan.repairs.iter().map(|r| r.row.to_string()).collect();
    exec(
        txn,
        "INSERT INTO totesys_cdc.repair (source_table, source_commit_lsn, source_ordinal, reason, change)
         SELECT t, l::pg_lsn, o, r, c::jsonb
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[]) AS u(t, l, o, r, c)
         ON CONFLICT DO NOTHING",
        &[&tables, &lsns, &ordinals, &reasons, &rows],
        "keep changes for repair",
    )
    .await?;
    Ok(())
}
