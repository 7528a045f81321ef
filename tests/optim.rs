//! flowlab's Adam against the textbook update (Kingma & Ba 2015, Algorithm 1) in plain f64.
use flowlab::experiment::config::AdamConfig;
use flowlab::experiment::optim::Adam;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn adam_follows_the_textbook_update() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let p = vs
        .root()
        .var_copy("p", &Tensor::from_slice(&[1.0f64, -2.0, 0.5]));
    vs.double(); // compare in float64
    let cfg = AdamConfig {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
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
            let g = 4.0 * c[i] * q[i].powi(3);
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
