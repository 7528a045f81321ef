//! Evaluation and figures of a trained [`Vae`]: importance-weighted NLL, ELBO per split, and the
//! posterior-sample grid and latent sweeps with reconstructions, prior samples and (2-D latents) the code scatter.
//!
//! Importance-weighted NLL (Burda et al. 2016; the protocol of the Sylvester paper, S = 5,000):
//!
//! ```text
//! ln p(x) ≈ ln (1/S) Σ_s w_s,   w_s = p(x|z_K⁽ˢ⁾) p(z_K⁽ˢ⁾) / q_K(z_K⁽ˢ⁾|x),
//! ln q_K(z_K|x) = ln q0(z0|x) − Σ_k ln|det ∂f_k/∂z_{k−1}|          (Rezende & Mohamed 2015, §4.2)
//! ```
//!
//! computed with log-sum-exp, at most `evaluation.chunk` samples per decoder pass. It is a lower
//! bound on ln p(x) that grows with S and equals the ELBO's expectation at S = 1.
use super::vae::{standard_normal_log_prob, Vae};
use super::{Sampler, StepContext};
use crate::bijector::{all_finite, Bijector};
use crate::plot::images::tile;
use crate::plot::{Figure, ImageGrid, Scatter};
use anyhow::Result;
use image::RgbImage;
use tch::{Kind, Tensor};

/// ln p(x) estimates per row of x with S importance samples each.
pub fn importance_log_px(vae: &Vae, x: &Tensor, samples: i64) -> Result<Tensor> {
    let chunk = vae.config.evaluation.chunk;
    let per_pass = samples.min(chunk);
    let rows_per_pass = (chunk / samples).max(1);
    let mut out = Vec::new();
    for xs in x.split(rows_per_pass, 0) {
        let n = xs.size()[0];
        let h = tch::no_grad(|| vae.encode(&xs));
        let mut log_w = Vec::new();
        let mut done = 0;
        while done < samples {
            let s = per_pass.min(samples - done);
            let lw = tch::no_grad(|| -> Result<Tensor> {
                let p = vae.posterior.sample(&h, s)?;
                let x_rep = xs.repeat_interleave_self_int(s, 0, None);
                let log_px = vae.log_likelihood(&p.z, &x_rep);
                Ok(log_px + standard_normal_log_prob(&p.z) - &p.log_q0 + &p.log_det)
            })?;
            log_w.push(lw.to_kind(Kind::Double).reshape([n, s]));
            done += s;
        }
        let log_w = Tensor::cat(&log_w, 1);
        out.push(log_w.logsumexp([1i64].as_slice(), false) - (samples as f64).ln());
    }
    Ok(Tensor::cat(&out, 0))
}

pub fn evaluate(vae: &Vae) -> Result<Vec<(String, f64)>> {
    let s = vae.config.evaluation.importance_samples;
    let d = &vae.data;
    let train_subset = d.train_batch(0, d.train.size()[0].min(1000));
    let nll = -importance_log_px(vae, &d.test, s)?
        .mean(Kind::Double)
        .double_value(&[]);
    let test_elbo = vae.mean_elbo(&d.test)?;
    let mut metrics = vec![
        ("train_elbo".into(), vae.mean_elbo(&train_subset)?),
        ("val_elbo".into(), vae.mean_elbo(&d.val)?),
        ("test_elbo".into(), test_elbo),
        ("test_nll".into(), nll),
        ("importance_samples".into(), s as f64),
    ];
    if vae.config.decoder.is_discrete() {
        // Nats per image → bits per pixel (the Frey Faces tables report −ELBO this way).
        let per_dim = (d.pixels() as f64) * std::f64::consts::LN_2;
        metrics.push(("test_elbo_bits_per_dim".into(), -test_elbo / per_dim));
        metrics.push(("test_nll_bits_per_dim".into(), nll / per_dim));
    }
    Ok(metrics)
}

/// The code of test digit `i`: z_K of q0's mean pushed through the flow (1 × latent).
fn code_of(vae: &Vae, i: i64) -> Result<(Tensor, Tensor)> {
    let x = vae.data.test.narrow(0, i, 1);
    let h = vae.encode(&x);
    let (mean, _) = vae.posterior.q0(&h);
    let flow = vae.posterior.flow(&h)?;
    Ok((x, flow.forward(&mean, None)?.0))
}

/// The latent sweep: `steps` decodings per row, row r adding linspace(−range, range) to dimension
/// `dims[r]` of the code.
pub fn latent_sweep(
    vae: &Vae,
    digit: i64,
    dims: &[i64],
    range: f64,
    steps: i64,
) -> Result<RgbImage> {
    tch::no_grad(|| {
        let (_, code) = code_of(vae, digit)?;
        let line = Tensor::linspace(-range, range, steps, (code.kind(), code.device()));
        let mut rows = Vec::new();
        for &d in dims {
            let mut unit = vec![0f32; vae.latent() as usize];
            unit[d as usize] = 1.0;
            let unit = Tensor::from_slice(&unit).to_device(code.device());
            rows.push(vae.decode_mean(&(code.repeat([steps, 1]) + line.unsqueeze(1) * unit)));
        }
        tile(&Tensor::cat(&rows, 0), vae.data.rows, vae.data.cols, steps)
    })
}

/// Inputs and their reconstructions, alternating rows of 16.
pub fn reconstruction_grid(
    inputs: &Tensor,
    recon: &Tensor,
    rows: i64,
    cols: i64,
) -> Result<RgbImage> {
    let n = inputs.size()[0];
    let mut parts = Vec::new();
    for start in (0..n).step_by(16) {
        let len = 16.min(n - start);
        parts.push(inputs.narrow(0, start, len));
        parts.push(recon.narrow(0, start, len));
    }
    tile(&Tensor::cat(&parts, 0), rows, cols, 16)
}

pub fn figures(vae: &Vae, ev: &super::vae::EvalConfig) -> Result<Vec<(String, Figure)>> {
    let d = &vae.data;
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<()> {
        // The posterior-sample grid: 256 decodings of posterior samples for one test digit.
        let x = d.test.narrow(0, ev.digit, 1);
        let p = vae.posterior.sample(&vae.encode(&x), 256)?;
        let grid = tile(&vae.decode_mean(&p.z), d.rows, d.cols, 16)?;
        let title = format!(
            "decoder means of 256 posterior samples, test digit {}",
            ev.digit
        );
        out.push((
            "posterior_samples".into(),
            ImageGrid::new(&title, grid).into(),
        ));
        let dims = ev.sweep_dims(vae.latent());
        let sweep = latent_sweep(vae, ev.digit, &dims, ev.sweep_range, ev.sweep_steps)?;
        let title = format!("latent sweep ±{} along dims {dims:?}", ev.sweep_range);
        out.push(("latent_sweep".into(), ImageGrid::new(&title, sweep).into()));
        let n = d.test.size()[0].min(64);
        let inputs = d.test.narrow(0, 0, n);
        let z = vae.posterior.sample(&vae.encode(&inputs), 1)?.z;
        let recon = reconstruction_grid(&inputs, &vae.decode_mean(&z), d.rows, d.cols)?;
        let title = "test digits (odd rows) and reconstructions (even rows)";
        out.push((
            "reconstructions".into(),
            ImageGrid::new(title, recon).into(),
        ));
        let prior = tile(&vae.sample(64, 1.0)?, d.rows, d.cols, 8)?;
        let title = "decoder means of 64 prior samples";
        out.push(("prior_samples".into(), ImageGrid::new(title, prior).into()));
        if vae.latent() == 2 {
            let codes = codes(vae, &d.test)?;
            let title = "test codes (flow of the posterior mean)";
            let scatter = Scatter::new(title, &codes, &d.test_labels, "digit")?;
            out.push(("latent_codes".into(), scatter.into()));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Codes (flow of q0's mean) of every row of x.
fn codes(vae: &Vae, x: &Tensor) -> Result<Tensor> {
    let mut out = Vec::new();
    for xs in x.split(500, 0) {
        let h = vae.encode(&xs);
        let (mean, _) = vae.posterior.q0(&h);
        let flow = vae.posterior.flow(&h)?;
        out.push(flow.forward(&mean, None)?.0);
    }
    Ok(Tensor::cat(&out, 0))
}

/// Three rows of 16 for TensorBoard: test digits, their reconstructions, prior samples.
pub fn snapshot(vae: &Vae) -> Result<Figure> {
    tch::no_grad(|| {
        let d = &vae.data;
        let n = d.test.size()[0].min(16);
        let x = d.test.narrow(0, 0, n);
        let z = vae.posterior.sample(&vae.encode(&x), 1)?.z;
        let parts = [x.shallow_clone(), vae.decode_mean(&z), vae.sample(n, 1.0)?];
        let grid = tile(&Tensor::cat(&parts, 0), d.rows, d.cols, n)?;
        let title = "test digits, reconstructions, prior samples";
        Ok(ImageGrid::new(title, grid).into())
    })
}

/// Re-runs a step's forward pass stage by stage and names the first non-finite one.
pub fn locate_nonfinite(vae: &Vae, ctx: &StepContext) -> Option<String> {
    tch::no_grad(|| {
        let x = vae.data.train_batch(ctx.step, ctx.batch_size);
        let h = vae.encode(&x);
        if !all_finite(&h) {
            return Some("the encoder".into());
        }
        let (mean, log_var) = vae.posterior.q0(&h);
        if !all_finite(&mean) || !all_finite(&log_var) {
            return Some("the encoder's mean/variance heads".into());
        }
        let z0 = &mean + (&log_var * 0.5).exp() * mean.randn_like();
        let flow = match vae.posterior.flow(&h) {
            Ok(f) => f,
            Err(e) => return Some(format!("the posterior flow's parameters ({e})")),
        };
        let mut z = z0;
        for (layer, name) in flow.layers().into_iter().zip(vae.posterior.layer_names()) {
            match layer.forward(&z, None) {
                Ok((next, ld)) if all_finite(&next) && all_finite(&ld) => z = next,
                _ => return Some(format!("posterior layer {name}")),
            }
        }
        if !all_finite(&vae.log_likelihood(&z, &x)) {
            return Some("the decoder".into());
        }
        None
    })
}
