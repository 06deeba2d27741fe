//! Table shapes from the system catalogs: what pgoutput's Relation message leaves out
//! (nullability, primary key, type names, the base type of a domain).
//!
//! A column of a domain type is described as the domain's base type (followed through
//! domains over domains), with the base's modifier and `format_type` name, so every stage
//! types it as its base: a domain over `integer` travels as an integer. The domain's
//! constraints are the source's business; its name does not travel.

use cdc_core::{ColumnSchema, ReplicaIdentity, TableId, TableName, TableSchema};
use tokio_postgres::GenericClient;

use crate::error::SourceError;

const TABLE_SQL: &str = "\
    SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.oid = $1";

const COLUMNS_SQL: &str = "\
    SELECT a.attname::text, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod), \
           NOT a.attnotnull, \
           coalesce(a.attnum = ANY(pk.indkey), false), \
           CASE c.relreplident \
             WHEN 'f' THEN true \
             WHEN 'i' THEN coalesce(a.attnum = ANY(ri.indkey), false) \
             WHEN 'd' THEN coalesce(a.attnum = ANY(pk.indkey), false) \
             ELSE false END, \
           t.typtype = 'd' \
    FROM pg_attribute a \
    JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_type t ON t.oid = a.atttypid \
    LEFT JOIN pg_index pk ON pk.indrelid = a.attrelid AND pk.indisprimary \
    LEFT JOIN pg_index ri ON ri.indrelid = a.attrelid AND ri.indisreplident \
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
    ORDER BY a.attnum";

/// Looks up a table's OID by name; `MissingTable` when there is none.
pub async fn table_id(
    client: &impl GenericClient,
    name: &TableName,
) -> Result<TableId, SourceError> {
    let row = client
        .query_opt(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&name.schema, &name.name],
        )
        .await
        .map_err(SourceError::sql(format!("look up table {name}")))?
        .ok_or_else(|| SourceError::MissingTable(name.to_string()))?;
    Ok(TableId(row.get::<_, u32>(0)))
}

/// Reads a table's current shape from the catalogs.
pub async fn table_schema(
    client: &impl GenericClient,
    id: TableId,
) -> Result<TableSchema, SourceError> {
    Ok(described_table(client, id).await?.0)
}

/// A table's shape, and per column the type OID the column is declared with (a domain's
/// own OID, which pgoutput's Relation message carries, where the shape has its base).
pub(crate) async fn described_table(
    client: &impl GenericClient,
    id: TableId,
) -> Result<(TableSchema, Vec<u32>), SourceError> {
    let table = client
        .query_opt(TABLE_SQL, &[&id.0])
        .await
        .map_err(SourceError::sql(format!("look up relation {id}")))?
        .ok_or_else(|| SourceError::MissingTable(format!("with OID {id}")))?;
    let name = TableName::new(table.get::<_, String>(1), table.get::<_, String>(2));
    let identity: String = table.get(3);
    let replica_identity = identity
        .bytes()
        .next()
        .and_then(ReplicaIdentity::from_code)
        .unwrap_or(ReplicaIdentity::Default);
    let rows = client
        .query(COLUMNS_SQL, &[&id.0])
        .await
        .map_err(SourceError::sql(format!("read columns of {name}")))?;
    let mut columns = Vec::with_capacity(rows.len());
    let mut declared = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut column = ColumnSchema {
            name: row.get(0),
            type_oid: row.get(1),
            type_modifier: row.get(2),
            type_name: row.get(3),
            nullable: row.get(4),
            primary_key: row.get(5),
            replica_identity: row.get(6),
        };
        declared.push(column.type_oid);
        if row.get::<_, bool>(7) {
            (column.type_oid, column.type_modifier, column.type_name) =
                domain_base(client, column.type_oid, column.type_modifier).await?;
        }
        columns.push(column);
    }
    let schema = TableSchema {
        id,
        name,
        columns,
        replica_identity,
    };
    Ok((schema, declared))
}

/// The base type of domain `oid` (through domains over domains): its OID, its modifier
/// (the innermost one declared) and its `format_type` name.
async fn domain_base(
    client: &impl GenericClient,
    mut oid: u32,
    mut typmod: i32,
) -> Result<(u32, i32, String), SourceError> {
    // PostgreSQL forbids cycles; the bound only keeps a corrupt catalog from looping.
    for _ in 0..64 {
        let row = client
            .query_opt(
                "SELECT typtype = 'd', typbasetype, typtypmod FROM pg_type WHERE oid = $1",
                &[&oid],
            )
            .await
            .map_err(SourceError::sql(format!("look up the base of type {oid}")))?;
        match row {
            Some(row) if row.get::<_, bool>(0) => {
                if typmod == -1 {
                    typmod = row.get(2);
                }
                oid = row.get(1);
            }
            _ => break,
        }
    }
    let name = client
        .query_one("SELECT format_type($1, $2)", &[&oid, &typmod])
        .await
        .map_err(SourceError::sql(format!("name type {oid}")))?
        .get(0);
    Ok((oid, typmod, name))
}

/// Names of the ordinary tables in `schema`, sorted.
pub async fn tables_in_schema(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Vec<TableName>, SourceError> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(SourceError::sql(format!("list tables in schema {schema}")))?;
    Ok(rows
        .iter()
        .map(|r| TableName::new(schema, r.get::<_, String>(0)))
        .collect())
}
