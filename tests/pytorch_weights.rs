//! PyTorch `torch.save` files: listed by `flowlab weights`, loaded by `--init-from` with `--map`
//! rules (stacking normflows' per-layer tensors into flowlab's stacked ones), never executed.
mod common;
use common::*;
use std::process::Command;

/// Trains 4 normflows planar layers on U1 (its TwoModes) briefly, saves the state dict, and
/// writes 1,000 of its samples with normflows' own log q; also a pickle that would run code.
const NORMFLOWS: &str = r#"
import sys, os, torch, numpy as np, normflows as nf
out = sys.argv[1]
torch.manual_seed(0)
flows = [nf.flows.Planar((2,)) for _ in range(4)]
model = nf.NormalizingFlow(q0=nf.distributions.DiagGaussian(2, trainable=False), flows=flows, p=nf.distributions.TwoModes(2.0, 0.2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(100):
    opt.zero_grad(); model.reverse_kld(128).backward(); opt.step()
torch.save(model.state_dict(), os.path.join(out, "planar.pt"))
model = model.double()
with torch.no_grad():
    z, log_q = model.sample(1000)
np.savetxt(os.path.join(out, "z.csv"), z.numpy(), delimiter=",", fmt="%.17g")
np.savetxt(os.path.join(out, "log_q.csv"), log_q.numpy(), fmt="%.17g")
class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(out, "pickle-code-ran"),))
torch.save({"w": torch.zeros(2), "payload": RunsCode()}, os.path.join(out, "code.pt"))
"#;

const MAP: &str = r"flows\.(\d+)\.([uwb])=flow.0.$2[$1]";

fn numbers(text: &str) -> Vec<f64> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn a_normflows_planar_flow_loads_and_gives_normflows_log_densities() {
    let dir = scratch("pytorch-weights");
    let o = Command::new(python())
        .args(["-c", NORMFLOWS, dir.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pt = dir.join("planar.pt");

    let o = flowlab(&["weights", pt.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        listing.contains("flows.3.u") && listing.contains("[1, 2]") && listing.contains("Float"),
        "{listing}"
    );
    let o = flowlab(&["weights", pt.to_str().unwrap(), "--map", MAP]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        listing.contains("flow.0.u") && listing.contains("[4, 1, 2]"),
        "{listing}"
    );
    assert!(
        stderr(&o).contains("q0.loc"),
        "unmatched names reported: {}",
        stderr(&o)
    );

    let cfg = write(&dir, "planar.json", &tiny_config("imported", 4, 10));
    let out = dir.join("runs");
    let run = |k: &str, name: &str| {
        flowlab(&[
            "run",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            &format!("name={name}"),
            "--set",
            &format!("model.flow_fit.flow[0].planar.length={k}"),
            "--set",
            "train.steps=0",
            "--init-from",
            pt.to_str().unwrap(),
            "--map",
            MAP,
        ])
    };
    let o = run("4", "imported");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("initialized 3 tensors") && stderr(&o).contains("q0.log_scale"),
        "{}",
        stderr(&o)
    );

    let expected = numbers(&std::fs::read_to_string(dir.join("log_q.csv")).unwrap());
    assert_eq!(expected.len(), 1000);
    for dtype in ["f32", "f64"] {
        let lp = dir.join(format!("log_prob_{dtype}.csv"));
        let o = flowlab(&[
            "log-prob",
            out.join("imported").to_str().unwrap(),
            "--input",
            dir.join("z.csv").to_str().unwrap(),
            "--out",
            lp.to_str().unwrap(),
            "--dtype",
            dtype,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let got = numbers(&std::fs::read_to_string(&lp).unwrap());
        assert_eq!(got.len(), 1000);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-4,
            "{dtype}: flowlab and normflows log q differ by up to {worst}"
        );
    }

    // Three layers cannot take four: the error names both shapes.
    let o = run("3", "too-few");
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("has shape [4, 1]") && e.contains("expects [3]"),
        "{e}"
    );
}

#[test]
fn pickles_holding_code_and_bad_rules_are_refused() {
    let dir = scratch("pytorch-refused");
    let o = Command::new(python())
        .args(["-c", NORMFLOWS, dir.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = flowlab(&["weights", dir.join("code.pt").to_str().unwrap()]);
    assert!(
        !o.status.success()
            && stderr(&o).contains("posix.system")
            && stderr(&o).contains("never executes"),
        "{}",
        stderr(&o)
    );
    assert!(
        !dir.join("pickle-code-ran").exists(),
        "the pickle's code ran"
    );

    let pt = dir.join("planar.pt");
    let o = flowlab(&["weights", pt.to_str().unwrap(), "--map", "flows.(=x"]);
    assert!(
        !o.status.success() && stderr(&o).contains("bad regular expression"),
        "{}",
        stderr(&o)
    );
    let o = flowlab(&[
        "weights",
        pt.to_str().unwrap(),
        "--map",
        r"flows\.(\d+)\.u=u[$1]",
        "--map",
        r"flows\.[12]\.w=w[0]",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("both become"),
        "{}",
        stderr(&o)
    );
    let o = flowlab(&[
        "weights",
        pt.to_str().unwrap(),
        "--map",
        r"flows\.([13])\.u=u[$1]",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("needs indices 0..4, missing [0, 2]"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.join("cut.pt"), &std::fs::read(&pt).unwrap()[..200]).unwrap();
    let o = flowlab(&["weights", dir.join("cut.pt").to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("cut.pt"),
        "{}",
        stderr(&o)
    );
}
