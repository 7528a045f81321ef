//! Data in and out: numeric CSV tables.
pub mod csv;
pub mod toy;
