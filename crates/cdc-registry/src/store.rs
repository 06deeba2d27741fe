//! The registry's state in PostgreSQL: schemas by id, subjects' versions, compatibility levels.
//!
//! ```text
//!   schemas            id ─┬─ schema_text (as first submitted), normalized, fingerprint (unique)
//!   subject_versions       └── (subject, version) → schema_id, deleted
//!   subject_config     subject ('' = global) → compatibility
//! ```
//!
//! **Concurrency.** Every write runs in a transaction that first takes a transaction-level
//! advisory lock keyed by the registry's schema name, so the instances sharing a
//! database act one at a time when they assign ids and versions: one schema never gets
//! two ids, and a subject never gets two equal versions. Unique constraints on the
//! fingerprint and on `(subject, version)` back this up. Reads take no lock.
//!
//! **Durability.** A registration answers only after its transaction commits.
//! Schema rows are never deleted, so an id, once handed out, keeps decoding old
//! messages even after every version using it is deleted permanently, and the same
//! schema registered again gets its old id back.

use std::sync::Arc;

use apache_avro::Schema;
use cdc_core::Secret;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::GenericClient;

use crate::api::{RegisteredSchema, SchemaId, SubjectVersion};
use crate::canonical::{self, ParsedSchema};
use crate::compat::{self, CompatibilityLevel, Earlier};
use crate::error::{RegistryError, StoreError};
use crate::pool::Pool;

/// Default PostgreSQL schema holding the registry's tables.
pub const DEFAULT_SCHEMA: &str = "schema_registry";

/// Default number of PostgreSQL connections per store.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// First key of the advisory lock that serializes writers (ASCII "RG"); the second is the schema name's hash.
const LOCK_CLASS: i32 = 0x5247;

/// Key of the global compatibility level in `subject_config` (an empty subject is never valid).
const GLOBAL: &str = "";

/// Where and how a [`RegistryStore`] keeps its state.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    conn: Secret,
    password: Option<Secret>,
    schema: String,
    pool_size: usize,
}

impl StoreConfig {
    /// Settings for the database at `conn`, a libpq-style string or `postgres://` URL (it may hold a password, hence a [`Secret`]).
    pub fn new(conn: Secret) -> Self {
        StoreConfig {
            conn,
            password: None,
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    /// Uses `password` instead of any password in the connection string.
    pub fn password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Keeps the tables in PostgreSQL schema `schema` instead of [`DEFAULT_SCHEMA`].
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Opens at most `size` connections (at least one) instead of [`DEFAULT_POOL_SIZE`].
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }
}

/// The registry's durable state in PostgreSQL; cheap to clone, shared by all requests.
#[derive(Debug, Clone)]
pub struct RegistryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Arc<Pool>,
    schema: String,
    schemas: String,
    versions: String,
    config: String,
}

/// One version of a subject as stored.
#[derive(Debug, Clone)]
pub(crate) struct VersionRow {
    pub version: i32,
    pub id: i32,
    pub deleted: bool,
    pub text: String,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionSpec {
    /// The highest version (`latest` or `-1`).
    Latest,
    /// A version number, 1 or more.
    Number(i32),
}

impl VersionSpec {
    /// Parses a path segment the way Confluent does: `latest`, `-1`, or 1..=2^31-1.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match trimmed.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        }
    }

    /// Picks the version this names among `rows` (ordered by version), looking at deleted ones only when `deleted`.
    fn pick(self, rows: &[VersionRow], deleted: bool) -> Option<&VersionRow> {
        let mut visible = rows.iter().filter(|row| deleted || !row.deleted);
        match self {
            VersionSpec::Latest => visible.next_back(),
            VersionSpec::Number(n) => visible.find(|row| row.version == n),
        }
    }

    fn describe(self) -> String {
        match self {
            VersionSpec::Latest => "latest".to_owned(),
            VersionSpec::Number(n) => n.to_string(),
        }
    }
}

impl RegistryStore {
    /// Connects to PostgreSQL and creates the registry's schema and tables when missing.
    pub async fn connect(config: StoreConfig) -> Result<Self, StoreError> {
        let schema = config.schema.clone();
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(StoreError::SchemaName(schema));
        }
        let split = cdc_pgtls::split_conn_string(config.conn.expose()).map_err(StoreError::Tls)?;
        let tls = split.tls.connector().map_err(StoreError::Tls)?;
        let mut pg: tokio_postgres::Config =
            split.rest.parse().map_err(StoreError::ConnectionString)?;
        if let Some(password) = &config.password {
            pg.password(password.expose());
        }
        if pg.get_application_name().is_none() {
            pg.application_name("cdc-registry");
        }
        let quoted = quote_ident(&schema);
        let store = RegistryStore {
            inner: Arc::new(Inner {
                pool: Pool::new(pg, tls, config.pool_size),
                schemas: format!("{quoted}.\"schemas\""),
                versions: format!("{quoted}.\"subject_versions\""),
                config: format!("{quoted}.\"subject_config\""),
                schema,
            }),
        };
        store.migrate(&quoted).await?;
        Ok(store)
    }

    /// The PostgreSQL schema holding the tables.
    pub fn schema_name(&self) -> &str {
        &self.inner.schema
    }

    /// Checks that PostgreSQL answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.inner.pool.get().await?;
        client
            .execute("SELECT 1", &[])
            .await
            .map_err(StoreError::sql("ping PostgreSQL"))?;
        Ok(())
    }

    async fn migrate(&self, quoted_schema: &str) -> Result<(), StoreError> {
        let Inner {
            schemas,
            versions,
            config,
            ..
        } = &*self.inner;
        let ddl = format!(
            "CREATE SCHEMA IF NOT EXISTS {quoted_schema};
             CREATE TABLE IF NOT EXISTS {schemas} (
                 id integer PRIMARY KEY CHECK (id > 0),
                 schema_type text NOT NULL DEFAULT 'AVRO',
                 schema_text text NOT NULL,
                 normalized text NOT NULL,
                 fingerprint bytea NOT NULL UNIQUE,
                 created_at timestamptz NOT NULL DEFAULT now()
             );
             CREATE TABLE IF NOT EXISTS {versions} (
                 subject text NOT NULL CHECK (subject <> ''),
                 version integer NOT NULL CHECK (version > 0),
                 schema_id integer NOT NULL REFERENCES {schemas} (id),
                 deleted boolean NOT NULL DEFAULT false,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (subject, version)
             );
             CREATE INDEX IF NOT EXISTS subject_versions_schema_id ON {versions} (schema_id);
             CREATE TABLE IF NOT EXISTS {config} (
                 subject text PRIMARY KEY,
                 compatibility text NOT NULL CHECK (compatibility IN
                     ('NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD',
                      'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE'))
             );"
        );
        let mut client = self.inner.pool.get().await?;
        // Tables made earlier (or by a DBA, for a role without CREATE) need no DDL at all.
        let ready: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL
                        AND to_regclass($3) IS NOT NULL",
                &[schemas, versions, config],
            )
            .await
            .map_err(StoreError::sql("look for the registry's tables"))?
            .get(0);
        if ready {
            return Ok(());
        }
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::sql("begin the migration"))?;
        // Concurrent `CREATE … IF NOT EXISTS` can still collide in the catalog: take turns.
        self.lock(&tx).await?;
        tx.batch_execute(&ddl)
            .await
            .map_err(StoreError::sql("create the registry's tables"))?;
        tx.commit()
            .await
            .map_err(StoreError::sql("commit the migration"))
    }

    /// Takes the writers' advisory lock until the end of the transaction.
    async fn lock(&self, tx: &impl GenericClient) -> Result<(), StoreError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &self.inner.schema],
        )
        .await
        .map_err(StoreError::sql("take the registry's write lock"))?;
        Ok(())
    }

    /// The text of schema `id`, if any.
    pub(crate) async fn schema_text(&self, id: SchemaId) -> Result<Option<String>, StoreError> {
        let Ok(id) = i32::try_from(id.get()) else {
            return Ok(None);
        };
        let client = self.inner.pool.get().await?;
        let sql = format!(
            "SELECT schema_text FROM {} WHERE id = $1",
            self.inner.schemas
        );
        first_column(&*client, &sql, &[&id], "read a schema by id").await
    }

    /// The subject versions using schema `id`; `None` when no such schema exists.
    pub(crate) async fn versions_of(
        &self,
        id: SchemaId,
        deleted: bool,
    ) -> Result<Option<Vec<SubjectVersion>>, StoreError> {
        let Ok(id) = i32::try_from(id.get()) else {
            return Ok(None);
        };
        let client = self.inner.pool.get().await?;
        let exists = format!("SELECT 1 FROM {} WHERE id = $1", self.inner.schemas);
        if client
            .query_opt(&exists, &[&id])
            .await
            .map_err(StoreError::sql("read a schema by id"))?
            .is_none()
        {
            return Ok(None);
        }
        let sql = format!(
            "SELECT subject, version FROM {} WHERE schema_id = $1 AND ($2 OR NOT deleted)
             ORDER BY subject, version",
            self.inner.versions
        );
        let rows = client
            .query(&sql, &[&id, &deleted])
            .await
            .map_err(StoreError::sql("list the versions of a schema"))?;
        Ok(Some(
            rows.iter()
                .map(|row| SubjectVersion {
                    subject: row.get(0),
                    version: row.get(1),
                })
                .collect(),
        ))
    }

    /// Subject names, sorted; soft-deleted subjects too when `deleted`.
    pub(crate) async fn subjects(
        &self,
        deleted: bool,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.inner.pool.get().await?;
        let sql = format!(
            "SELECT DISTINCT subject FROM {} WHERE ($1 OR NOT deleted) AND starts_with(subject, $2)
             ORDER BY subject",
            self.inner.versions
        );
        let rows = client
            .query(&sql, &[&deleted, &prefix])
            .await
            .map_err(StoreError::sql("list subjects"))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Every version of `subject`, deleted or not, ordered by version.
    async fn rows(
        &self,
        client: &impl GenericClient,
        subject: &str,
    ) -> Result<Vec<VersionRow>, StoreError> {
        let sql = format!(
            "SELECT v.version, v.schema_id, v.deleted, s.schema_text
             FROM {} v JOIN {} s ON s.id = v.schema_id
             WHERE v.subject = $1 ORDER BY v.version",
            self.inner.versions, self.inner.schemas
        );
        let rows = client
            .query(&sql, &[&subject])
            .await
            .map_err(StoreError::sql("read a subject's versions"))?;
        Ok(rows
            .iter()
            .map(|row| VersionRow {
                version: row.get(0),
                id: row.get(1),
                deleted: row.get(2),
                text: row.get(3),
            })
            .collect())
    }

    /// The versions of `subject` visible with `deleted`; 40401 when there are none.
    async fn visible_rows(
        &self,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<VersionRow>, RegistryError> {
        let client = self.inner.pool.get().await?;
        let rows: Vec<VersionRow> = self
            .rows(&*client, subject)
            .await?
            .into_iter()
            .filter(|row| deleted || !row.deleted)
            .collect();
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(rows)
    }

    /// The version numbers of `subject`; 40401 when it has none.
    pub(crate) async fn version_numbers(
        &self,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let rows = self.visible_rows(subject, deleted).await?;
        Ok(rows.iter().map(|row| row.version).collect())
    }

    /// One version of `subject`: 40401 without the subject, 40402 without the version.
    pub(crate) async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<RegisteredSchema, RegistryError> {
        let rows = self.visible_rows(subject, deleted).await?;
        let row = spec
            .pick(&rows, deleted)
            .ok_or_else(|| RegistryError::VersionNotFound(spec.describe()))?;
        Ok(record(subject, row))
    }

    /// The id of the schema whose normalized form is `normalized`, if registered anywhere.
    async fn id_for(
        &self,
        client: &impl GenericClient,
        normalized: &str,
    ) -> Result<Option<i32>, StoreError> {
        let sql = format!(
            "SELECT id FROM {} WHERE fingerprint = sha256(convert_to($1::text, 'UTF8')) AND normalized = $1",
            self.inner.schemas
        );
        first_column(client, &sql, &[&normalized], "look a schema up").await
    }

    /// `POST /subjects/{subject}`: the newest version of `subject` holding `schema`.
    pub(crate) async fn lookup(
        &self,
        subject: &str,
        schema: &ParsedSchema,
        deleted: bool,
    ) -> Result<RegisteredSchema, RegistryError> {
        let rows = self.visible_rows(subject, deleted).await?;
        let client = self.inner.pool.get().await?;
        let id = self.id_for(&*client, &schema.normalized).await?;
        rows.iter()
            .rev()
            .find(|row| Some(row.id) == id)
            .map(|row| record(subject, row))
            .ok_or(RegistryError::SchemaNotFound(None))
    }

    /// `POST /subjects/{subject}/versions`: the schema's id, registering a new version when needed.
    ///
    /// A schema already live under the subject keeps its version; one known under any
    /// subject keeps its id; otherwise it gets the next id. The new version must pass
    /// the subject's compatibility level, or 409.
    pub(crate) async fn register(
        &self,
        subject: &str,
        schema: &ParsedSchema,
        wanted_id: Option<i64>,
    ) -> Result<SchemaId, RegistryError> {
        let mut client = self.inner.pool.get().await?;
        // The common case, a producer re-announcing its schema, needs no lock.
        if let Some(id) = self.live_id(&*client, subject, schema).await? {
            return check_wanted(id, wanted_id);
        }
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::sql("begin a registration"))?;
        self.lock(&tx).await?;
        let rows = self.rows(&tx, subject).await?;
        let known = self.id_for(&tx, &schema.normalized).await?;
        if let Some(id) = known {
            if rows.iter().any(|row| !row.deleted && row.id == id) {
                return check_wanted(to_schema_id(id), wanted_id);
            }
        }
        if let Some(wanted) = wanted_id {
            if known.map(i64::from) != Some(wanted) {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject '{subject}' is not in import mode: this registry assigns ids itself (requested id {wanted})"
                )));
            }
        }
        let level = self.level_in(&tx, subject).await?;
        let live: Vec<&VersionRow> = rows.iter().filter(|row| !row.deleted).collect();
        let checked: &[&VersionRow] = if level.is_transitive() {
            &live
        } else {
            match live.split_last() {
                Some((last, _)) => std::slice::from_ref(last),
                None => &[],
            }
        };
        if level != CompatibilityLevel::None && !checked.is_empty() {
            let parsed = checked
                .iter()
                .map(|row| Ok((row.version, parse_stored(row)?)))
                .collect::<Result<Vec<(i32, Schema)>, StoreError>>()?;
            let earlier: Vec<Earlier<'_>> = parsed
                .iter()
                .map(|(version, schema)| Earlier {
                    version: *version,
                    schema,
                })
                .collect();
            let problems = compat::incompatibilities(level, &schema.schema, &earlier);
            if !problems.is_empty() {
                return Err(RegistryError::IncompatibleSchema {
                    subject: subject.to_owned(),
                    problems,
                });
            }
        }
        let id = match known {
            Some(id) => id,
            None => self.insert_schema(&tx, schema).await?,
        };
        let version = rows.last().map_or(1, |row| row.version + 1);
        let sql = format!(
            "INSERT INTO {} (subject, version, schema_id) VALUES ($1, $2, $3)",
            self.inner.versions
        );
        tx.execute(&sql, &[&subject, &version, &id])
            .await
            .map_err(StoreError::sql("record a new version"))?;
        tx.commit()
            .await
            .map_err(StoreError::sql("commit a registration"))?;
        tracing::info!(subject, version, id, "registered schema version");
        Ok(to_schema_id(id))
    }

    /// The id of `schema` when it is a live version of `subject`.
    async fn live_id(
        &self,
        client: &impl GenericClient,
        subject: &str,
        schema: &ParsedSchema,
    ) -> Result<Option<SchemaId>, StoreError> {
        let sql = format!(
            "SELECT s.id FROM {} s JOIN {} v ON v.schema_id = s.id
             WHERE s.fingerprint = sha256(convert_to($1::text, 'UTF8')) AND s.normalized = $1
               AND v.subject = $2 AND NOT v.deleted
             LIMIT 1",
            self.inner.schemas, self.inner.versions
        );
        let id = first_column(
            client,
            &sql,
            &[&schema.normalized, &subject],
            "look a schema up in a subject",
        )
        .await?;
        Ok(id.map(to_schema_id))
    }

    async fn insert_schema(
        &self,
        tx: &impl GenericClient,
        schema: &ParsedSchema,
    ) -> Result<i32, StoreError> {
        let sql = format!(
            "INSERT INTO {0} (id, schema_text, normalized, fingerprint)
             SELECT COALESCE(MAX(id), 0) + 1, $1::text, $2::text, sha256(convert_to($2::text, 'UTF8'))
             FROM {0}
             RETURNING id",
            self.inner.schemas
        );
        let row = tx
            .query_one(&sql, &[&schema.text, &schema.normalized])
            .await
            .map_err(StoreError::sql("store a new schema"))?;
        Ok(row.get(0))
    }

    /// Checks `schema` against `subject` at `spec` (or the level's versions for `None`/latest); the reasons it fails.
    pub(crate) async fn check(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        schema: &ParsedSchema,
    ) -> Result<Vec<String>, RegistryError> {
        let client = self.inner.pool.get().await?;
        let level = self.level_in(&*client, subject).await?;
        let rows = self.rows(&*client, subject).await?;
        drop(client);
        let live: Vec<&VersionRow> = rows.iter().filter(|row| !row.deleted).collect();
        let targets: Vec<&VersionRow> = match spec {
            None | Some(VersionSpec::Latest) => {
                // Against the level's own choice: latest, or all for transitive levels.
                live
            }
            Some(VersionSpec::Number(n)) => {
                if live.is_empty() {
                    return Err(RegistryError::SubjectNotFound(subject.to_owned()));
                }
                let row = live
                    .into_iter()
                    .find(|row| row.version == n)
                    .ok_or_else(|| RegistryError::VersionNotFound(n.to_string()))?;
                vec![row]
            }
        };
        if level == CompatibilityLevel::None || targets.is_empty() {
            return Ok(Vec::new());
        }
        let parsed = targets
            .iter()
            .map(|row| Ok((row.version, parse_stored(row)?)))
            .collect::<Result<Vec<(i32, Schema)>, StoreError>>()?;
        let earlier: Vec<Earlier<'_>> = parsed
            .iter()
            .map(|(version, schema)| Earlier {
                version: *version,
                schema,
            })
            .collect();
        Ok(compat::incompatibilities(level, &schema.schema, &earlier))
    }

    /// `DELETE /subjects/{subject}`: soft-deletes every live version, or removes a soft-deleted subject for good.
    pub(crate) async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let mut client = self.inner.pool.get().await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::sql("begin a delete"))?;
        self.lock(&tx).await?;
        let rows = self.rows(&tx, subject).await?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let any_live = rows.iter().any(|row| !row.deleted);
        let versions: Vec<i32> = if permanent {
            if any_live {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            let sql = format!("DELETE FROM {} WHERE subject = $1", self.inner.versions);
            tx.execute(&sql, &[&subject])
                .await
                .map_err(StoreError::sql("delete a subject"))?;
            rows.iter().map(|row| row.version).collect()
        } else {
            if !any_live {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
            }
            let sql = format!(
                "UPDATE {} SET deleted = true WHERE subject = $1 AND NOT deleted",
                self.inner.versions
            );
            tx.execute(&sql, &[&subject])
                .await
                .map_err(StoreError::sql("soft-delete a subject"))?;
            rows.iter()
                .filter(|row| !row.deleted)
                .map(|row| row.version)
                .collect()
        };
        // A subject without live versions loses its own level, as in Confluent.
        self.drop_level(&tx, subject).await?;
        tx.commit()
            .await
            .map_err(StoreError::sql("commit a delete"))?;
        tracing::info!(subject, permanent, ?versions, "deleted subject");
        Ok(versions)
    }

    /// `DELETE /subjects/{subject}/versions/{version}`: soft, or permanent after soft.
    pub(crate) async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let mut client = self.inner.pool.get().await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::sql("begin a delete"))?;
        self.lock(&tx).await?;
        let rows = self.rows(&tx, subject).await?;
        if !rows.iter().any(|row| permanent || !row.deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        // A numbered version is found even when soft-deleted, to answer 40406 rather than 40402.
        let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
        let row = spec
            .pick(&rows, include_deleted)
            .ok_or_else(|| RegistryError::VersionNotFound(spec.describe()))?;
        let version = row.version;
        if permanent {
            if !row.deleted {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version,
                });
            }
            let sql = format!(
                "DELETE FROM {} WHERE subject = $1 AND version = $2",
                self.inner.versions
            );
            tx.execute(&sql, &[&subject, &version])
                .await
                .map_err(StoreError::sql("delete a version"))?;
        } else {
            if row.deleted {
                return Err(RegistryError::VersionSoftDeleted {
                    subject: subject.to_owned(),
                    version,
                });
            }
            let sql = format!(
                "UPDATE {} SET deleted = true WHERE subject = $1 AND version = $2",
                self.inner.versions
            );
            tx.execute(&sql, &[&subject, &version])
                .await
                .map_err(StoreError::sql("soft-delete a version"))?;
            if !rows.iter().any(|r| !r.deleted && r.version != version) {
                self.drop_level(&tx, subject).await?;
            }
        }
        tx.commit()
            .await
            .map_err(StoreError::sql("commit a delete"))?;
        tracing::info!(subject, version, permanent, "deleted subject version");
        Ok(version)
    }

    /// The level set for `subject`, or the global one for `None`; `None` when not set.
    pub(crate) async fn level(
        &self,
        subject: Option<&str>,
    ) -> Result<Option<CompatibilityLevel>, StoreError> {
        let client = self.inner.pool.get().await?;
        self.level_row(&*client, subject.unwrap_or(GLOBAL)).await
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    async fn level_in(
        &self,
        client: &impl GenericClient,
        subject: &str,
    ) -> Result<CompatibilityLevel, StoreError> {
        if let Some(level) = self.level_row(client, subject).await? {
            return Ok(level);
        }
        Ok(self.level_row(client, GLOBAL).await?.unwrap_or_default())
    }

    async fn level_row(
        &self,
        client: &impl GenericClient,
        key: &str,
    ) -> Result<Option<CompatibilityLevel>, StoreError> {
        let sql = format!(
            "SELECT compatibility FROM {} WHERE subject = $1",
            self.inner.config
        );
        level_query(client, &sql, key, "read a compatibility level").await
    }

    /// Sets the level of `subject`, or the global one for `None`.
    pub(crate) async fn set_level(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), StoreError> {
        let client = self.inner.pool.get().await?;
        let sql = format!(
            "INSERT INTO {} (subject, compatibility) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
            self.inner.config
        );
        client
            .execute(&sql, &[&subject.unwrap_or(GLOBAL), &level.as_str()])
            .await
            .map_err(StoreError::sql("set a compatibility level"))?;
        Ok(())
    }

    /// Removes the level of `subject`, or the global one for `None`; the level removed, if any.
    pub(crate) async fn delete_level(
        &self,
        subject: Option<&str>,
    ) -> Result<Option<CompatibilityLevel>, StoreError> {
        let client = self.inner.pool.get().await?;
        self.drop_level(&*client, subject.unwrap_or(GLOBAL)).await
    }

    async fn drop_level(
        &self,
        client: &impl GenericClient,
        key: &str,
    ) -> Result<Option<CompatibilityLevel>, StoreError> {
        let sql = format!(
            "DELETE FROM {} WHERE subject = $1 RETURNING compatibility",
            self.inner.config
        );
        level_query(client, &sql, key, "delete a compatibility level").await
    }
}

/// Runs `sql` for the subject `key` (`$1`) and reads the level in the row it returns, if any.
async fn level_query(
    client: &impl GenericClient,
    sql: &str,
    key: &str,
    action: &'static str,
) -> Result<Option<CompatibilityLevel>, StoreError> {
    let name: Option<String> = first_column(client, sql, &[&key], action).await?;
    // The CHECK constraint keeps the column to the seven names.
    Ok(name.and_then(|name| name.parse().ok()))
}

/// The first column of the row `sql` returns with `params`, if it returns one.
async fn first_column<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    action: &'static str,
) -> Result<Option<T>, StoreError>
where
    T: for<'a> FromSql<'a>,
{
    let row = client
        .query_opt(sql, params)
        .await
        .map_err(StoreError::sql(action))?;
    row.map(|row| row.try_get(0))
        .transpose()
        .map_err(StoreError::sql(action))
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn to_schema_id(id: i32) -> SchemaId {
    // The table's CHECK keeps ids positive.
    SchemaId(id.unsigned_abs())
}

fn check_wanted(id: SchemaId, wanted: Option<i64>) -> Result<SchemaId, RegistryError> {
    match wanted {
        Some(wanted) if wanted != i64::from(id.get()) => Err(RegistryError::OperationNotPermitted(
            format!("Schema already registered with id {id} instead of input id {wanted}"),
        )),
        _ => Ok(id),
    }
}

fn record(subject: &str, row: &VersionRow) -> RegisteredSchema {
    RegisteredSchema {
        subject: subject.to_owned(),
        version: row.version,
        id: to_schema_id(row.id),
        schema: row.text.clone(),
        schema_type: None,
    }
}

fn parse_stored(row: &VersionRow) -> Result<Schema, StoreError> {
    canonical::parse(&row.text)
        .map(|parsed| parsed.schema)
        .map_err(|reason| StoreError::Corrupt { id: row.id, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_confluent() {
        assert_eq!(VersionSpec::parse("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("LATEST").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("1").unwrap(), VersionSpec::Number(1));
        assert_eq!(
            VersionSpec::parse("2147483647").unwrap(),
            VersionSpec::Number(i32::MAX)
        );
        for bad in ["0", "-2", "2147483648", "one", "", "1.5"] {
            let err = VersionSpec::parse(bad).unwrap_err();
            assert_eq!(err.error_code(), 42202, "{bad:?}");
        }
    }

    #[test]
    fn picks_versions_with_and_without_deleted_ones() {
        let row = |version, deleted| VersionRow {
            version,
            id: 1,
            deleted,
            text: String::new(),
        };
        let rows = [row(1, false), row(2, false), row(3, true)];
        let latest = VersionSpec::Latest;
        assert_eq!(latest.pick(&rows, false).map(|r| r.version), Some(2));
        assert_eq!(latest.pick(&rows, true).map(|r| r.version), Some(3));
        let three = VersionSpec::Number(3);
        assert!(three.pick(&rows, false).is_none());
        assert_eq!(three.pick(&rows, true).map(|r| r.version), Some(3));
        assert!(VersionSpec::Number(9).pick(&rows, true).is_none());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("schema_registry"), "\"schema_registry\"");
        assert_eq!(quote_ident("a\"b; DROP"), "\"a\"\"b; DROP\"");
    }
}
