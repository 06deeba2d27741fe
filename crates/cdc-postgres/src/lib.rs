//! Reading totesys changes out of PostgreSQL through logical replication.
//!
//! ```text
//!   setup ──► publication + slot ──► snapshot (exported snapshot, parallel COPY)
//!                                        │
//!   connection (replication=database) ──► walsender framing ──► pgoutput decoder
//!                                        │
//!                             reader: transactions → ChangeEvents → ChangeSink
//!                                        ▲                              │
//!                                        └── confirm LSN once durable ◄─┘
//! ```

pub mod catalog;
pub mod checkpoint;
pub mod connection;
mod cursor;
pub mod error;
pub mod metrics;
pub mod pgoutput;
pub mod reader;
pub mod rows;
pub mod setup;
pub mod sink;
pub mod snapshot;
pub mod spill;
pub mod text_value;
pub mod walsender;
