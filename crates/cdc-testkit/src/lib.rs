//! cdc-testkit
