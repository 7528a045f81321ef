//! Networks and parameter holders that produce the parameters of bijectors. Kept apart from the
//! transform math in `bijector/`: a planar layer does not know whether its parameters are free
//! (here) or come from an encoder.
pub mod coders;
pub mod convnet;
pub mod flow_params;
pub mod made;
pub mod mlp;
pub mod multiscale;
