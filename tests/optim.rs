//! flowlab's Adam and Adamax against the textbook updates (Kingma & Ba 2015, Algorithms 1 and
//! 2) in plain f64.
use flowlab::experiment::config::{AdamConfig, Algorithm};
use flowlab::experiment::optim::Adam;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn adam_follows_the_textbook_update() {
    textbook(0.0);
}

#[test]
fn weight_decay_follows_torch_adams_l2_form() {
    // torch.optim.Adam's weight_decay: the gradient gains wd·p before the moments (coupled L2,
    // not AdamW's decoupled decay).
    textbook(0.05);
}

fn textbook(weight_decay: f64) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let p = vs
        .root()
        .var_copy("p", &Tensor::from_slice(&[1.0f64, -2.0, 0.5]));
    vs.double(); // compare in float64
    let cfg = AdamConfig {
        algorithm: Algorithm::Adam,
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay,
    };
    let mut opt = Adam::new(&vs, cfg.clone());
    // Reference: the same loss L = Σ c_i p_i⁴, gradient 4 c_i p_i³.
    let c = [1.0, 0.3, 2.0];
    let mut q = [1.0f64, -2.0, 0.5];
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    for t in 1..=25 {
        opt.zero_grad();
        let loss = (p.pow_tensor_scalar(4) * Tensor::from_slice(&c)).sum(Kind::Double);
        loss.backward();
        opt.step();
        for i in 0..3 {
            let g = 4.0 * c[i] * q[i].powi(3) + weight_decay * q[i];
            m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
            v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
            let m_hat = m[i] / (1.0 - cfg.beta1.powi(t));
            let v_hat = v[i] / (1.0 - cfg.beta2.powi(t));
            q[i] -= cfg.lr * m_hat / (v_hat.sqrt() + cfg.eps);
        }
    }
    let got = Vec::<f64>::try_from(&p).unwrap();
    for i in 0..3 {
        assert!(
            (got[i] - q[i]).abs() < 1e-12,
            "p[{i}] = {} vs textbook {}",
            got[i],
            q[i]
        );
    }
    assert_eq!(opt.step, 25);
}

/// Adamax (Kingma & Ba 2015, Algorithm 2, with torch.optim.Adamax's ε inside the max):
/// u_t = max(β2·u_{t−1}, |g_t| + ε), θ_t = θ_{t−1} − (α / (1 − β1^t))·m_t / u_t; fused (CPU) and
/// tensor-op forms both follow it.
#[test]
fn adamax_follows_the_textbook_update_in_both_forms() {
    for fused in [true, false] {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let p = vs
            .root()
            .var_copy("p", &Tensor::from_slice(&[1.0f64, -2.0, 0.5]));
        vs.double();
        let cfg = AdamConfig {
            algorithm: Algorithm::Adamax,
            lr: 5e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        };
        let mut opt = Adam::new(&vs, cfg.clone());
        let c = [1.0, 0.3, 2.0];
        let mut q = [1.0f64, -2.0, 0.5];
        let (mut m, mut u) = ([0.0f64; 3], [0.0f64; 3]);
        for t in 1..=30 {
            opt.zero_grad();
            (p.pow_tensor_scalar(4) * Tensor::from_slice(&c))
                .sum(Kind::Double)
                .backward();
            if fused {
                opt.step();
            } else {
                opt.step_with_tensor_ops();
            }
            for i in 0..3 {
                let g = 4.0 * c[i] * q[i].powi(3);
                m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
                u[i] = (cfg.beta2 * u[i]).max(g.abs() + cfg.eps);
                q[i] -= cfg.lr / (1.0 - cfg.beta1.powi(t)) * m[i] / u[i];
            }
        }
        let got = Vec::<f64>::try_from(&p).unwrap();
        for i in 0..3 {
            assert!(
                (got[i] - q[i]).abs() < 1e-12,
                "fused {fused}: p[{i}] = {} vs textbook {}",
                got[i],
                q[i]
            );
        }
    }
    // The config names it.
    let cfg: AdamConfig =
        serde_json::from_str(r#"{"algorithm": "adamax", "lr": 5e-4, "eps": 1e-7}"#).unwrap();
    assert_eq!(cfg.algorithm, Algorithm::Adamax);
}

/// Two copies of one model of float32 parameters, large enough that the fused CPU update splits
/// over threads, and small ones besides.
fn twin_models() -> (nn::VarStore, nn::VarStore) {
    let make = || {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = root.randn("big", &[600, 1000], 0.0, 1.0);
        let _ = root.randn("small", &[3, 5], 0.0, 1.0);
        let _ = root.randn("bias", &[17], 0.0, 1.0);
        vs
    };
    (make(), make())
}

fn quartic_loss(vs: &nn::VarStore) -> Tensor {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.iter()
        .map(|(_, v)| (v.pow_tensor_scalar(4) * 0.25 - v * 0.3).sum(Kind::Float))
        .fold(Tensor::from(0f32), |a, b| a + b)
}

#[test]
fn fused_cpu_step_matches_the_tensor_op_step() {
    let cfg = AdamConfig {
        lr: 0.01,
        weight_decay: 0.01,
        ..Default::default()
    };
    tch::set_num_threads(2);
    let (a, b) = twin_models();
    let (mut fused, mut reference) = (Adam::new(&a, cfg.clone()), Adam::new(&b, cfg));
    for _ in 0..5 {
        for (vs, opt) in [(&a, &mut fused), (&b, &mut reference)] {
            opt.zero_grad();
            quartic_loss(vs).backward();
        }
        let (na, nb) = (fused.grad_norm(), reference.grad_norm());
        let torch_norm = a
            .trainable_variables()
            .iter()
            .map(|v| v.grad().square().sum(Kind::Double).double_value(&[]))
            .sum::<f64>()
            .sqrt();
        assert!(
            (na - torch_norm).abs() < 1e-5 * torch_norm,
            "grad norm {na} vs libtorch {torch_norm}"
        );
        assert!((na - nb).abs() < 1e-5 * nb, "grad norms {na} vs {nb}");
        fused.step();
        reference.step_with_tensor_ops();
    }
    tch::set_num_threads(1);
    let (_, init) = twin_models();
    for (name, va) in a.variables() {
        let vb = &b.variables()[&name];
        let diff = (&va - vb).abs().max().double_value(&[]);
        assert!(
            diff < 1e-6,
            "{name}: fused and tensor-op Adam differ by {diff}"
        );
        let moved = (&va - &init.variables()[&name])
            .abs()
            .max()
            .double_value(&[]);
        assert!(moved > 1e-3, "{name} did not move ({moved})");
    }
}

#[test]
fn zero_grad_releases_gradients_and_a_parameter_without_one_is_left_alone() {
    let vs = nn::VarStore::new(Device::Cpu);
    let used = vs
        .root()
        .var_copy("used", &Tensor::from_slice(&[1.0f32, 2.0]));
    let unused = vs.root().var_copy("unused", &Tensor::from_slice(&[3.0f32]));
    let mut opt = Adam::new(&vs, AdamConfig::default());
    (&used * &used).sum(Kind::Float).backward();
    assert!(used.grad().defined());
    opt.zero_grad();
    assert!(
        !used.grad().defined(),
        "zero_grad must release the gradient"
    );
    (&used * &used).sum(Kind::Float).backward();
    assert_eq!(
        Vec::<f32>::try_from(used.grad()).unwrap(),
        vec![2.0, 4.0],
        "no stale gradient added"
    );
    opt.step();
    assert_eq!(Vec::<f32>::try_from(&unused).unwrap(), vec![3.0]);
    assert!(Vec::<f32>::try_from(&used).unwrap()[0] < 1.0);
}
