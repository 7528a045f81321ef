//! HI-VAE decodes columns in groups (one batched product per type and class count) and codes its
//! input in one pass; both must equal the release's per-column form, which the other HI-VAE tests
//! hold against closed forms: parameters, log-likelihoods and imputations to 1e-6.
mod common;
use common::*;
use flowlab::experiment::config::{ExperimentConfig, ModelConfig};
use flowlab::model::hivae::Hivae;
use flowlab::model::hivae_heads::Heads;
use flowlab::model::hivae_lik::{encode, Imputation, Params};
use tch::{Device, Kind, Tensor};

/// Ten columns, several of each type, so that groups hold more than one column.
fn table(dir: &std::path::Path) {
    let types = [
        "real,1,",
        "pos,1,",
        "real,1,",
        "cat,3,3",
        "count,1,",
        "cat,3,3",
        "ordinal,4,4",
        "pos,1,",
        "ordinal,4,4",
        "cat,2,2",
    ];
    let mut data = String::new();
    for i in 0..200i64 {
        let v = |a: i64, m: i64| (i * a + i / 7) % m;
        data += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            v(3, 17) as f64 * 0.3 - 2.0,
            v(5, 13) as f64 * 1.7,
            v(7, 11) as f64 - 4.5,
            v(1, 3) + 1,
            v(2, 9),
            v(4, 3) + 1,
            v(5, 4) + 1,
            v(9, 23) as f64 * 0.1,
            v(3, 4) + 1,
            v(1, 2) + 1,
        );
    }
    std::fs::write(dir.join("data.csv"), data).unwrap();
    std::fs::write(
        dir.join("types.csv"),
        format!("type,dim,nclass\n{}\n", types.join("\n")),
    )
    .unwrap();
}

fn close(a: &Tensor, b: &Tensor, what: &str) {
    let err = (a - b).abs().max().double_value(&[]);
    assert!(
        err <= 1e-6,
        "{what}: grouped and per-column forms differ by {err}"
    );
}

fn parts(p: &Params) -> Vec<Tensor> {
    match p {
        Params::Normal { mean, var } => vec![mean.shallow_clone(), var.shallow_clone()],
        Params::Poisson { rate } => vec![rate.shallow_clone()],
        Params::Classes { log_p } => vec![log_p.shallow_clone()],
    }
}

#[test]
fn grouped_heads_and_input_coding_equal_the_per_column_form() {
    let dir = scratch("hivae-fused");
    table(&dir);
    let cfg = format!(
        r#"{{ "name": "fused", "model": {{ "hivae": {{ "data": {{ "csv": "{d}/data.csv", "types": "{d}/types.csv" }}, "y_dim": 3, "s_dim": 4 }} }} }}"#,
        d = dir.display()
    );
    let ModelConfig::Hivae(c) = ExperimentConfig::parse(&cfg).unwrap().model else {
        panic!("not a HI-VAE config")
    };
    let m = Hivae::new(c, Device::Cpu).unwrap();
    let d = m.types.len();
    // The model's grouping, rebuilt in float64 so that only the order of sums can differ.
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let heads = Heads::new(&vs.root(), &m.types, &m.schema.stats, 3, 4);
    let groups = &heads.groups;
    assert!(
        groups.len() < d,
        "the test table should form groups of several columns"
    );
    vs.double();
    tch::manual_seed(11);
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            v.copy_(&(v.randn_like() * 0.7));
        }
    });
    let n = 64;
    let x = m.x.narrow(0, 0, n).to_kind(Kind::Double);
    let seen = Tensor::rand([n, d as i64], (Kind::Double, Device::Cpu))
        .ge(0.3)
        .to_kind(Kind::Double);

    // The input coding: one pass against column by column.
    let per_column: Vec<Tensor> = (0..d)
        .map(|j| {
            encode(
                &m.types[j],
                m.schema.stats[j],
                &x.select(1, j as i64),
                &seen.select(1, j as i64),
            )
        })
        .collect();
    close(
        &m.encode_input(&x, &seen),
        &Tensor::cat(&per_column, 1),
        "input coding",
    );

    // The heads: each group against each of its columns as a per-column head.
    let y = Tensor::randn([n, d as i64 * 3], (Kind::Double, Device::Cpu));
    let s = Tensor::randn([n, 4], (Kind::Double, Device::Cpu)).softmax(1, Kind::Double);
    let mut columns_seen = 0;
    for (g, p) in groups.iter().zip(heads.params(&y, &s, None)) {
        let lp = g.log_prob(&p, &g.gather(&x));
        let imputed = Imputation::ALL.map(|how| g.impute(&p, how));
        for (pos, &j) in g.columns.iter().enumerate() {
            let head = heads.column_head(j);
            let what = format!("column {} ({})", j + 1, head.t.name());
            let ref_p = head.params(&y.narrow(1, j as i64 * 3, 3), &s);
            for (a, b) in parts(&p.column(pos as i64)).iter().zip(parts(&ref_p)) {
                // Classes beyond the column's own count (padding in a mixed group) are absent.
                let a = if a.dim() == 2 {
                    a.narrow(1, 0, b.size()[1])
                } else {
                    a.shallow_clone()
                };
                close(&a, &b, &format!("{what} parameters"));
            }
            let ref_lp = head.log_prob(&ref_p, &x.select(1, j as i64));
            close(
                &lp.select(1, pos as i64),
                &ref_lp,
                &format!("{what} log-likelihood"),
            );
            for (how, v) in Imputation::ALL.iter().zip(&imputed) {
                close(
                    &v.select(1, pos as i64),
                    &head.impute(&ref_p, *how),
                    &format!("{what} imputation"),
                );
            }
            columns_seen += 1;
        }
    }
    assert_eq!(columns_seen, d, "every column belongs to exactly one group");
}
