//! Table shapes from the system catalogs: what pgoutput's Relation message leaves out
//! (nullability, primary key, type names).

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
             ELSE false END \
    FROM pg_attribute a \
    JOIN pg_class c ON c.oid = a.attrelid \
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
    let columns = rows
        .iter()
        .map(|row| ColumnSchema {
            name: row.get(0),
            type_oid: row.get(1),
            type_modifier: row.get(2),
            type_name: row.get(3),
            nullable: row.get(4),
            primary_key: row.get(5),
            replica_identity: row.get(6),
        })
        .collect();
    Ok(TableSchema {
        id,
        name,
        columns,
        replica_identity,
    })
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
