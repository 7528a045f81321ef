//! Adam and Adamax (Kingma & Ba 2015, Algorithms 1 and 2) over a VarStore's trainable
//! variables, with state that can be saved and restored so `--resume` continues exactly where a
//! run stopped.
use super::config::{AdamConfig, Algorithm};
use anyhow::{Context, Result};
use tch::{nn, Kind, Tensor};

/// Adam, or Adamax when the config says so (`v` then holds the infinity norm u).
pub struct Adam {
    cfg: AdamConfig,
    /// (name, parameter, first moment, second moment), sorted by name.
    slots: Vec<(String, Tensor, Tensor, Tensor)>,
    /// libtorch's own optimizer over the same parameters, used only for its `zero_grad`, which
    /// releases the gradients instead of zeroing them: the next backward pass then hands its
    /// fresh gradient buffers over instead of adding them into zeroed ones (a memset and an
    /// extra pass over every gradient saved per step).
    releaser: tch::COptimizer,
    pub step: i64,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, cfg: AdamConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut releaser =
            tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false).expect("libtorch SGD optimizer");
        for (_, p) in &vars {
            releaser
                .add_parameters(p, 0)
                .expect("libtorch SGD optimizer");
        }
        let slots = vars
            .into_iter()
            .map(|(n, p)| {
                let m = p.zeros_like().detach();
                let v = p.zeros_like().detach();
                (n, p, m, v)
            })
            .collect();
        Adam {
            cfg,
            slots,
            releaser,
            step: 0,
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Releases every gradient (the next backward pass defines them afresh).
    pub fn zero_grad(&mut self) {
        self.releaser.zero_grad().expect("libtorch zero_grad");
    }

    /// Global L2 norm of the gradients (NaN or ∞ when any gradient is not finite).
    pub fn grad_norm(&self) -> f64 {
        let mut sum_sq = 0.0f64;
        let mut on_device: Vec<Tensor> = Vec::new();
        for (_, p, _, _) in &self.slots {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            match host_slice(&g) {
                Some(HostSlice::F32(x)) => sum_sq += sum_of_squares(x),
                Some(HostSlice::F64(x)) => sum_sq += sum_of_squares(x),
                None => on_device.push(g.to_kind(Kind::Double).square().sum(Kind::Double)),
            }
        }
        if !on_device.is_empty() {
            sum_sq += Tensor::stack(&on_device, 0)
                .sum(Kind::Double)
                .double_value(&[]);
        }
        sum_sq.sqrt()
    }

    /// Scales gradients so their global norm is at most `max_norm`, given the current norm.
    pub fn clip_grad_norm(&mut self, norm: f64, max_norm: f64) {
        if norm > max_norm && norm.is_finite() {
            let scale = max_norm / (norm + 1e-12);
            for (_, p, _, _) in &mut self.slots {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
        }
    }

    /// One Adam step. On the CPU each parameter is updated in one fused pass over its memory
    /// (what PyTorch calls `fused=True`): the tensor-op form makes seven passes, and for a
    /// 784-300-300 VAE those passes took a fifth of the step. Other devices use the tensor ops.
    pub fn step(&mut self) {
        self.update(true);
    }

    /// The same step with tensor operations only, as run on devices other than the CPU.
    pub fn step_with_tensor_ops(&mut self) {
        self.update(false);
    }

    fn update(&mut self, fuse_on_cpu: bool) {
        self.step += 1;
        let k = self.coefficients();
        tch::no_grad(|| {
            for (_, p, m, v) in &mut self.slots {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let slices = if fuse_on_cpu {
                    (host_slice(p), host_slice(&g), host_slice(m), host_slice(v))
                } else {
                    (None, None, None, None)
                };
                match slices {
                    (
                        Some(HostSlice::F32(p)),
                        Some(HostSlice::F32(g)),
                        Some(HostSlice::F32(m)),
                        Some(HostSlice::F32(v)),
                    ) => fused_update(p, g, m, v, &k),
                    (
                        Some(HostSlice::F64(p)),
                        Some(HostSlice::F64(g)),
                        Some(HostSlice::F64(m)),
                        Some(HostSlice::F64(v)),
                    ) => fused_update(p, g, m, v, &k),
                    _ => tensor_update(p, g, m, v, &k),
                }
            }
        });
    }

    fn coefficients(&self) -> Coefficients {
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        let adamax = c.algorithm == Algorithm::Adamax;
        Coefficients {
            one_minus_beta1: 1.0 - c.beta1,
            one_minus_beta2: 1.0 - c.beta2,
            // Adam: p −= s · m / (√v + ε√bc2), s = lr √bc2 / bc1 (the bias corrections folded
            // into scalars). Adamax: u = max(β2 u, |g| + ε), p −= (lr / bc1) · m / u.
            step_size: if adamax {
                c.lr / bc1
            } else {
                c.lr * bc2.sqrt() / bc1
            },
            eps: if adamax { c.eps } else { c.eps * bc2.sqrt() },
            weight_decay: c.weight_decay,
            adamax,
        }
    }

    /// Moments and step count as named tensors (`m.<param>`, `v.<param>`, `step`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from(self.step))];
        for (n, _, m, v) in &self.slots {
            out.push((format!("m.{n}"), m.shallow_clone()));
            out.push((format!("v.{n}"), v.shallow_clone()));
        }
        out
    }

    pub fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let find = |k: &str| named.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        self.step = find("step")
            .context("optimizer state has no `step`")?
            .int64_value(&[]);
        for (n, _, m, v) in &mut self.slots {
            for (prefix, dst) in [("m", m), ("v", v)] {
                let key = format!("{prefix}.{n}");
                let src = find(&key).with_context(|| format!("optimizer state has no `{key}`"))?;
                anyhow::ensure!(
                    src.size() == dst.size(),
                    "optimizer state `{key}` has shape {:?}, expected {:?}",
                    src.size(),
                    dst.size()
                );
                tch::no_grad(|| dst.copy_(src));
            }
        }
        Ok(())
    }
}

/// Adam's per-step scalars, the bias corrections folded in.
struct Coefficients {
    one_minus_beta1: f64,
    one_minus_beta2: f64,
    step_size: f64,
    eps: f64,
    weight_decay: f64,
    adamax: bool,
}

/// Seven dispatches per parameter (lerp, addcdiv), for any device.
fn tensor_update(p: &mut Tensor, mut g: Tensor, m: &mut Tensor, v: &mut Tensor, k: &Coefficients) {
    if k.weight_decay > 0.0 {
        g = &g + &*p * k.weight_decay;
    }
    let _ = m.lerp_(&g, k.one_minus_beta1);
    let mut denom = if k.adamax {
        let u = (&*v * (1.0 - k.one_minus_beta2)).maximum(&(g.abs() + k.eps));
        v.copy_(&u);
        u
    } else {
        let _ = v.lerp_(&g.square(), k.one_minus_beta2);
        v.sqrt() + k.eps
    };
    let _ = denom.g_mul_scalar_(-1.0 / k.step_size);
    let _ = p.addcdiv_(m, &denom);
}

/// A contiguous CPU tensor's memory, viewed as a slice of its element type.
enum HostSlice<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

/// The memory of `t` when it is a contiguous CPU float tensor. Each tensor handed to one
/// update is a distinct allocation (parameter, its gradient, two moments), so the slices
/// never alias; the update runs under `no_grad` after the backward pass, when no graph
/// still reads them.
fn host_slice(t: &Tensor) -> Option<HostSlice<'_>> {
    if t.device() != tch::Device::Cpu || !t.is_contiguous() {
        return None;
    }
    let n = t.numel();
    let ptr = t.data_ptr();
    // SAFETY: a contiguous CPU tensor of `n` elements of this kind owns `n` such values at `ptr`.
    unsafe {
        match t.kind() {
            Kind::Float => Some(HostSlice::F32(std::slice::from_raw_parts_mut(
                ptr as *mut f32,
                n,
            ))),
            Kind::Double => Some(HostSlice::F64(std::slice::from_raw_parts_mut(
                ptr as *mut f64,
                n,
            ))),
            _ => None,
        }
    }
}

/// Elements per thread below which a parameter is updated on the calling thread alone.
const PARALLEL_GRAIN: usize = 1 << 18;

/// One pass of Adam over a parameter, split over libtorch's intra-op thread count for large ones.
fn fused_update<T: Real>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], k: &Coefficients) {
    let threads = (tch::get_num_threads().max(1) as usize)
        .min(p.len() / PARALLEL_GRAIN)
        .max(1);
    if threads == 1 {
        return fused_chunk(p, g, m, v, k);
    }
    let chunk = p.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts = p
            .chunks_mut(chunk)
            .zip(g.chunks(chunk))
            .zip(m.chunks_mut(chunk))
            .zip(v.chunks_mut(chunk));
        for (((p, g), m), v) in parts {
            scope.spawn(move || fused_chunk(p, g, m, v, k));
        }
    });
}

fn fused_chunk<T: Real>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], k: &Coefficients) {
    let (b1, b2) = (T::of(k.one_minus_beta1), T::of(k.one_minus_beta2));
    let (s, eps, wd) = (T::of(k.step_size), T::of(k.eps), T::of(k.weight_decay));
    let beta2 = T::of(1.0 - k.one_minus_beta2);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g + wd * *p;
        *m = *m + b1 * (g - *m);
        if k.adamax {
            *v = (beta2 * *v).max(g.abs() + eps);
            *p = *p - s * *m / *v;
        } else {
            *v = *v + b2 * (g * g - *v);
            *p = *p - s * *m / (v.sqrt() + eps);
        }
    }
}

/// Σ xᵢ², in blocks of independent lanes so that it vectorizes (a single running sum cannot, as
/// float addition is not associative); each block's partial sum is added in f64.
fn sum_of_squares<T: Real>(x: &[T]) -> f64 {
    const LANES: usize = 16;
    let mut total = 0.0f64;
    for block in x.chunks(4096) {
        let mut acc = [T::of(0.0); LANES];
        let mut lanes = block.chunks_exact(LANES);
        for c in &mut lanes {
            for (a, &b) in acc.iter_mut().zip(c) {
                *a = *a + b * b;
            }
        }
        let tail: f64 = lanes.remainder().iter().map(|&b| (b * b).to_f64()).sum();
        total += acc.iter().map(|a| a.to_f64()).sum::<f64>() + tail;
    }
    total
}

/// The float types the fused update runs on.
trait Real:
    Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, other: Self) -> Self;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
}
