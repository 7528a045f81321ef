//! Data in and out: numeric CSV tables.
pub mod csv;
