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

/// What the source's server and the connected role allow for logical replication: the
/// one readiness check behind capture's start, `init` and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The connected role.
    pub user: String,
    /// The server's `wal_level`.
    pub wal_level: String,
    /// Whether the role has REPLICATION (or is a superuser).
    pub may_replicate: bool,
    /// `max_replication_slots`.
    pub max_replication_slots: i32,
    /// `max_wal_senders`.
    pub max_wal_senders: i32,
}

impl Readiness {
    /// Reads the settings and the role's attributes in one query.
    pub async fn read(client: &Client) -> Result<Readiness, SourceError> {
        let row = client
            .query_one(
                "SELECT current_user::text, current_setting('wal_level'),
                        r.rolreplication OR r.rolsuper,
                        current_setting('max_replication_slots')::int,
                        current_setting('max_wal_senders')::int
                   FROM pg_roles r WHERE r.rolname = current_user",
                &[],
            )
            .await
            .map_err(SourceError::sql("read the source's replication settings"))?;
        Ok(Readiness {
            user: row.get(0),
            wal_level: row.get(1),
            may_replicate: row.get(2),
            max_replication_slots: row.get(3),
            max_wal_senders: row.get(4),
        })
    }

    /// The server's setting that rules out logical decoding, if any (`init` needs no more).
    pub fn server_problem(&self) -> Option<SourceError> {
        (self.wal_level != "logical").then(|| SourceError::WalLevel {
            actual: self.wal_level.clone(),
        })
    }

    /// The role's missing attribute, if any.
    pub fn role_problem(&self) -> Option<SourceError> {
        (!self.may_replicate).then(|| SourceError::NoReplicationPrivilege {
            user: self.user.clone(),
        })
    }

    /// Whether the server has room for a slot and a walsender at all.
    pub fn has_replication_room(&self) -> bool {
        self.max_replication_slots >= 1 && self.max_wal_senders >= 1
    }

    /// The first problem that stops capture, as its one-line error.
    pub fn require(&self) -> Result<(), SourceError> {
        match self.server_problem().or_else(|| self.role_problem()) {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}

/// Fails with a one-line error when the server or the role cannot do logical replication.
pub async fn check_source(client: &Client) -> Result<(), SourceError> {
    Readiness::read(client).await?.require()
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
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(SlotInfo {
        active_pid: row.get(0),
        confirmed_flush_lsn: slot_lsn(row.get(1))?,
        plugin: row.get(2),
    }))
}

/// An LSN column of `pg_replication_slots` (as text); a text that is no LSN is an error.
fn slot_lsn(text: Option<String>) -> Result<Option<Lsn>, SourceError> {
    text.map(|text| {
        text.parse().map_err(|_| {
            SourceError::Protocol(format!("pg_replication_slots gave a bad LSN {text:?}"))
        })
    })
    .transpose()
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

/// A publication's tables the connected role cannot `SELECT` (the snapshot reads them),
/// as `schema.table`, sorted.
pub async fn unreadable_published_tables(
    client: &Client,
    publication: &str,
) -> Result<Vec<String>, SourceError> {
    let rows = client
        .query(
            "SELECT format('%s.%s', schemaname, tablename) FROM pg_publication_tables
              WHERE pubname = $1
                AND NOT has_table_privilege(format('%I.%I', schemaname, tablename), 'SELECT')
              ORDER BY 1",
            &[&publication],
        )
        .await
        .map_err(SourceError::sql(format!(
            "check the privileges on the tables of publication {publication}"
        )))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Where a replication slot stands against the server's WAL (for `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStatus {
    /// The walsender streaming from the slot, when one is.
    pub streaming_pid: Option<i32>,
    /// The position the slot's reader last confirmed.
    pub confirmed_flush: Option<Lsn>,
    /// The server's current WAL position.
    pub server_lsn: Lsn,
    /// WAL bytes the server holds beyond the confirmed position.
    pub lag_bytes: Option<i64>,
    /// PostgreSQL's `wal_status` of the slot (`reserved`, `extended`, `unreserved`, `lost`).
    pub wal_status: Option<String>,
}

/// The slot `slot`'s status, `None` when it does not exist.
pub async fn slot_status(client: &Client, slot: &str) -> Result<Option<SlotStatus>, SourceError> {
    let row = client
        .query_opt(
            "SELECT active, active_pid, confirmed_flush_lsn::text, pg_current_wal_lsn()::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
                    wal_status
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(SourceError::sql(format!(
            "read the status of replication slot {slot}"
        )))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let active: bool = row.get(0);
    Ok(Some(SlotStatus {
        streaming_pid: row.get::<_, Option<i32>>(1).filter(|_| active),
        confirmed_flush: slot_lsn(row.get(2))?,
        server_lsn: slot_lsn(row.get(3))?.unwrap_or(Lsn::ZERO),
        lag_bytes: row.get(4),
        wal_status: row.get::<_, Option<String>>(5).filter(|s| !s.is_empty()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_the_first_problem_with_its_fix() {
        let ready = Readiness {
            user: "cdc".into(),
            wal_level: "logical".into(),
            may_replicate: true,
            max_replication_slots: 10,
            max_wal_senders: 10,
        };
        assert!(ready.require().is_ok() && ready.has_replication_room());
        let replica = Readiness {
            wal_level: "replica".into(),
            may_replicate: false,
            ..ready.clone()
        };
        let err = replica.require().unwrap_err().to_string();
        assert!(
            err.contains("wal_level is \"replica\"") && err.contains("restart"),
            "{err}"
        );
        let no_role = Readiness {
            may_replicate: false,
            ..ready.clone()
        };
        assert!(no_role.server_problem().is_none());
        let err = no_role.require().unwrap_err().to_string();
        assert!(err.contains("ALTER ROLE cdc REPLICATION"), "{err}");
        let full = Readiness {
            max_wal_senders: 0,
            ..ready
        };
        assert!(!full.has_replication_room());
    }

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
