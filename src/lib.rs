//! flowlab: variational autoencoders and normalizing flows on libtorch.
//!
//! Direction convention, everywhere: `forward` maps base → data (sampling), `inverse` maps
//! data → base (density). See [`bijector`].
pub mod bijector;
pub mod data;
pub mod distribution;
pub mod experiment;
pub mod flow;
pub mod grid;
pub mod log;
pub mod model;
pub mod nn;
pub mod plot;
pub mod rng;
pub mod target;
