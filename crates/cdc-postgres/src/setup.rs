//! Preconditions, the publication and the replication slot.

use cdc_core::{Lsn, TableName};
use tokio_postgres::Client;

use crate::error::SourceError;

/// Quotes an SQL identifier (`a"b` → `"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (`it's` → `'it''s'`).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Checks a slot name the way PostgreSQL does: 1–63 of `[a-z0-9_]`.
pub fn validate_slot_name(slot: &str) -> Result<(), SourceError> {
    let valid = !slot.is_empty()
        && slot.len() <= 63
        && slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(SourceError::Protocol(format!(
            "invalid replication slot name {slot:?}: use 1-63 lower-case letters, digits and underscores"
        )))
    }
}

/// Fails with a one-line error when the server or the role cannot do logical replication.
pub async fn check_source(client: &Client) -> Result<(), SourceError> {
    let row = client
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(SourceError::sql("read wal_level"))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(SourceError::WalLevel { actual: wal_level });
    }
    let row = client
        .query_one(
            "SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(SourceError::sql("read the role's attributes"))?;
    if !row.get::<_, bool>(1) {
        return Err(SourceError::NoReplicationPrivilege { user: row.get(0) });
    }
    Ok(())
}

/// The state of an existing slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Walsender holding the slot, when active.
    pub active_pid: Option<i32>,
    /// Position PostgreSQL will resume from.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// Output plugin of the slot.
    pub plugin: Option<String>,
}

/// Reads the slot's state; `None` when it does not exist.
pub async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>, SourceError> {
    let row = client
        .query_opt(
            "SELECT active_pid, confirmed_flush_lsn::text, plugin::text FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(SourceError::sql(format!("look up replication slot {slot}")))?;
    Ok(row.map(|row| SlotInfo {
        active_pid: row.get(0),
        confirmed_flush_lsn: row.get::<_, Option<String>>(1).and_then(|s| s.parse().ok()),
        plugin: row.get(2),
    }))
}

/// Fails with [`SourceError::SlotInUse`] when another process reads the slot.
pub async fn ensure_slot_free(
    client: &Client,
    slot: &str,
) -> Result<Option<SlotInfo>, SourceError> {
    let info = slot_info(client, slot).await?;
    if let Some(pid) = info.as_ref().and_then(|i| i.active_pid) {
        return Err(SourceError::SlotInUse {
            slot: slot.to_owned(),
            pid,
        });
    }
    Ok(info)
}

/// Creates the publication for `tables` when missing, or adds tables it lacks;
/// returns the tables it publishes.
pub async fn ensure_publication(
    client: &Client,
    publication: &str,
    tables: &[TableName],
) -> Result<Vec<TableName>, SourceError> {
    for table in tables {
        crate::catalog::table_id(client, table).await?;
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(SourceError::sql(format!(
            "look up publication {publication}"
        )))?
        .is_some();
    let list = |tables: &[&TableName]| {
        tables
            .iter()
            .map(|t| format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !exists {
        if tables.is_empty() {
            return Err(SourceError::Protocol(format!(
                "publication {publication} does not exist and no tables are configured to create it with"
            )));
        }
        let all: Vec<&TableName> = tables.iter().collect();
        let sql = format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote_ident(publication),
            list(&all)
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(SourceError::sql(format!(
                "create publication {publication}"
            )))?;
    } else {
        let published = published_tables(client, publication).await?;
        let missing: Vec<&TableName> = tables.iter().filter(|t| !published.contains(t)).collect();
        if !missing.is_empty() {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                quote_ident(publication),
                list(&missing)
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(SourceError::sql(format!(
                    "add tables to publication {publication}"
                )))?;
        }
    }
    published_tables(client, publication).await
}

/// The tables a publication covers, sorted.
pub async fn published_tables(
    client: &Client,
    publication: &str,
) -> Result<Vec<TableName>, SourceError> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .map_err(SourceError::sql(format!("list tables of publication {publication}")))?;
    Ok(rows
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn slot_names_follow_postgres_rules() {
        assert!(validate_slot_name("totesys_cdc_1").is_ok());
        assert!(validate_slot_name("Totesys").is_err());
        assert!(validate_slot_name("a;drop").is_err());
        assert!(validate_slot_name("").is_err());
        assert!(validate_slot_name(&"a".repeat(64)).is_err());
    }
}
