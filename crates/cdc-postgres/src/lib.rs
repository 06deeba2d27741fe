//! Reading totesys changes out of PostgreSQL through logical replication.

pub mod pgoutput;
pub mod text_value;
