//! Networks: MLPs, MADE, convolutional conditioners and the VAE coders. They implement the
//! conditioner traits of [`crate::bijector`] and never name a flow layer; the layers of
//! [`crate::flow`] build them.
pub mod coders;
pub mod convnet;
pub mod init;
pub mod made;
pub mod mlp;
