//! How every learned linear map and convolution in flowlab starts: one home for the schemes, so a
//! reader can see at a glance what each network uses and why.
//!
//! | scheme | weights | bias | used by |
//! |---|---|---|---|
//! | [`Init::Kaiming`] | U(±√(6/fan_in)) | U(±1/√fan_in) | VAE and HI-VAE MLP coders, HI-VAE's masked decoder (its last layer zero), q0's heads, IAF's context |
//! | [`Init::Torch`] | U(±1/√fan_in) | U(±1/√fan_in) | hidden layers of conditioners (MLP, MADE, conv) |
//! | [`Init::Scaled`] | the Torch bound × factor | the same | heads that compute flow parameters |
//! | [`Init::Zero`] | 0 | 0 | last layer of a conditioner (the layer starts as the identity) |
//! | U(±0.1), in `nn::made` | U(±0.1) | none | MADE's context weights (a bound that does not depend on the context's width) |
//!
//! Convolutions of the gated-conv coders keep tch's default (Kaiming weights, zero bias).
//!
//! `Kaiming` is tch's default (He et al. 2015, uniform form, gain √2 for ReLU) and `Torch` is
//! PyTorch's `nn.Linear` default. For the VAE's MLP coders Kaiming trains better (MNIST, 5 epochs
//! on 8,002 digits, 300-300 coders, z = 64: test NLL 138 against 175–178 with PyTorch's init). For
//! the heads that compute a posterior flow's parameters from the encoder's features, either
//! default makes a fresh flow move z far (Sylvester heads: by ‖Δz‖ ≈ 38 in 64-D against q0's own
//! noise of ≈ 7), the first KL estimates are hundreds of nats and the posterior collapses during
//! warm-up; those heads are `Scaled(HEAD_SCALE)`, so every fresh flow posterior starts at the
//! form its paper has when the heads add nothing, and the data-dependence is learned. That form
//! is the identity for most flows but not all: gated IAF scales z by sigmoid(forget bias) per
//! step (Kingma et al. 2016, eq. 14), and planar with the paper's constraint
//! m(a) = −1 + softplus(a) (Rezende & Mohamed 2015, App. A) gives wᵀû = m(0) = ln 2 − 1 at
//! w ≈ 0, so each step shrinks z along its w by the factor ln 2: Σ ln|det| = K ln ln 2 ≈ −5.9
//! nats at K = 16. The `init` tests hold every flow of `experiments/` to its own start.
use tch::nn;

/// The factor on PyTorch's bound for heads that compute flow parameters.
pub const HEAD_SCALE: f64 = 0.01;

/// How a linear map or convolution starts; see the module's table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Kaiming,
    Torch,
    Scaled(f64),
    Zero,
}

impl Init {
    /// The weight and bias initializers for a layer with `fan_in` inputs (for a convolution,
    /// input channels × kernel area).
    pub fn weight_and_bias(self, fan_in: i64) -> (nn::Init, nn::Init) {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let u = |b: f64| nn::Init::Uniform { lo: -b, up: b };
        match self {
            Init::Kaiming => (u((6.0 / fan_in as f64).sqrt()), u(bound)),
            Init::Torch => (u(bound), u(bound)),
            Init::Scaled(f) => (u(f * bound), u(f * bound)),
            Init::Zero => (nn::Init::Const(0.0), nn::Init::Const(0.0)),
        }
    }

    /// A linear layer `input → output` under `p`, named and drawn as `tch::nn::linear` does
    /// (`p/bias` first, then `p/weight`), so `Kaiming` gives exactly tch's default layer.
    pub fn linear(self, p: &nn::Path, input: i64, output: i64) -> nn::Linear {
        let (w, b) = self.weight_and_bias(input);
        let bs = Some(p.var("bias", &[output], b));
        nn::Linear {
            ws: p.var("weight", &[output, input], w),
            bs,
        }
    }

    /// The same layer without a bias.
    pub fn linear_no_bias(self, p: &nn::Path, input: i64, output: i64) -> nn::Linear {
        let (w, _) = self.weight_and_bias(input);
        nn::Linear {
            ws: p.var("weight", &[output, input], w),
            bs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_draw_within_their_bounds() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let fan_in = 300;
        for (i, (init, w_bound)) in [
            (Init::Kaiming, (6.0f64 / 300.0).sqrt()),
            (Init::Torch, 1.0 / 300f64.sqrt()),
            (Init::Scaled(0.01), 0.01 / 300f64.sqrt()),
        ]
        .into_iter()
        .enumerate()
        {
            let l = init.linear(&(vs.root() / i), fan_in, 2000);
            let max = l.ws.abs().max().double_value(&[]);
            // Uniform on ±bound: the largest of 600,000 draws is within 0.1 % of the bound.
            assert!(max <= w_bound && max > 0.999 * w_bound, "{init:?}: {max}");
        }
        let z = Init::Zero.linear(&(vs.root() / "z"), 3, 4);
        assert_eq!(z.ws.abs().sum(tch::Kind::Float).double_value(&[]), 0.0);
    }
}
