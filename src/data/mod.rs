//! Data in and out: numeric CSV tables, toy 2-D sets, MNIST (IDX).
pub mod batches;
pub mod csv;
pub mod hetero;
pub mod images;
pub mod mnist;
pub mod toy;
