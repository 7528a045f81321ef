//! The network side of a coupling layer, as the bijector math sees it: a map from the kept
//! (masked) input to the transformer's parameters. Networks in [`crate::nn`] implement it; the
//! bijectors never name a network type, so `bijector` does not depend on `nn`.
use tch::Tensor;

/// The network of a coupling layer: masked input → the law's parameters along axis 1.
pub trait Conditioner: Send {
    fn forward(&self, x: &Tensor) -> Tensor;

    /// For `[batch, D]` inputs: the output columns `outputs` of [`forward`](Self::forward) on
    /// an input that is zero except in the columns `inputs`, given as `x_in` =
    /// `[batch, |inputs|]`. The default builds the zero-filled input; an MLP skips the zeros.
    fn forward_restricted(
        &self,
        x_in: &Tensor,
        inputs: &Tensor,
        width: i64,
        outputs: &Tensor,
    ) -> Tensor {
        let full = x_in
            .new_zeros([x_in.size()[0], width], (x_in.kind(), x_in.device()))
            .index_copy(1, inputs, x_in);
        self.forward(&full).index_select(1, outputs)
    }
}
