//! cdc-sim
