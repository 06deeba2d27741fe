//! A Confluent-compatible schema registry: the REST server, persisted in PostgreSQL,
//! and a client for any registry that speaks the same API.
//!
//! ```text
//!   producers / consumers            RegistryClient ──┐   (caches id ↔ schema, retries 5xx)
//!   Python/Java Confluent clients ────────────────────┤
//!                                                     ▼  HTTP(S), basic auth, application/vnd.schemaregistry.v1+json
//!                      ┌──────────── router(store) ─────────────┐   one or more instances
//!                      │ /subjects  /schemas/ids  /config       │
//!                      │ /compatibility  (Avro resolution rules)│
//!                      └──────────────────┬─────────────────────┘
//!                                         ▼  RegistryStore (a few tokio-postgres connections)
//!                      PostgreSQL schema "schema_registry": schemas, subject_versions, subject_config
//!                                         (writers take turns on an advisory lock)
//! ```
//!
//! Only Avro schemas are held, without references. A schema's identity is its
//! normalized JSON (see `canonical`), so the same schema under two subjects, or sent
//! with different whitespace, has one id. Ids are never reused or forgotten: an id
//! found in a Kafka message always resolves.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cdc_core::Secret;
//! use cdc_registry::{RegistryClient, RegistryStore, StoreConfig};
//!
//! let store = RegistryStore::connect(StoreConfig::new(Secret::new("host=localhost dbname=cdc"))).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! tokio::spawn(cdc_registry::serve(listener, store, std::future::pending()));
//!
//! let client = RegistryClient::new("http://127.0.0.1:8081")?;
//! let id = client.register("totesys.public.staff-value", r#""string""#).await?;
//! assert_eq!(&*client.schema_by_id(id).await?, r#""string""#);
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod canonical;
mod client;
mod compat;
mod error;
pub mod metrics;
mod pool;
mod server;
mod store;
mod tls;

pub use api::{RegisteredSchema, SchemaId};
pub use auth::{user_line, user_line_with, Users, UsersError, DEFAULT_ITERATIONS};
pub use client::{ClientError, RegistryClient, RegistryClientBuilder};
pub use compat::{CompatibilityLevel, UnknownLevel, ALL_LEVELS};
pub use error::{RegistryError, StoreError};
pub use metrics::RegistryMetrics;
pub use server::{router, serve, CONTENT_TYPE_V1, PROBE_PATHS, READY_TIMEOUT};
pub use store::{RegistryStore, StoreConfig, DEFAULT_POOL_SIZE, DEFAULT_SCHEMA};
pub use tls::{ServerTls, TlsListener, TlsSetupError, HANDSHAKE_TIMEOUT};
