#!/usr/bin/env bash
# MAF and RealNVP (5 transforms / layers, hidden 128-128) by maximum likelihood on correlated
# Gaussian tables of D = 2, 13 and 784 columns, batch 256, Adam, one thread: training steps/s and
# the time to draw 10,000 samples (100 at D = 784), flowlab next to zuko in the same Python environment, with ratios.
# zuko's layers differ in detail (its MAF's scale parameterization, its RealNVP's masks); the sizes,
# passes and batch are the same. flowlab's sampling time is that of `flowlab sample -n 10000` minus
# that of `-n 1` (process start-up), so it includes writing the CSV. Ratios above 1: flowlab faster.
# Usage: bash bench/flows_vs_zuko.sh   (make bench runs it; STEPS=… to shorten)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-1000}"
py="${FLOWLAB_PYTHON:-python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-8s%5s%14s%10s%8s%15s%10s%8s\n" flow D "train flowlab" zuko ratio "sample flowlab" zuko ratio
for d in 2 13 784; do
  rows=$([ $d = 784 ] && echo 4000 || echo 20000)
  "$py" - "$work/t$d.csv" $d $rows <<'PY'
import sys, torch
torch.manual_seed(0)
path, D, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
L = torch.randn(D, D).tril() * (0.3 / D ** 0.5) + torch.eye(D)
x = torch.randn(n, D) @ L.T + torch.randn(D)
with open(path, "w") as f:
    f.write(",".join(f"c{i}" for i in range(D)) + "\n")
    for r in x.tolist():
        f.write(",".join(f"{v:.5f}" for v in r) + "\n")
PY
  s=$([ $d = 784 ] && echo $((steps / 5)) || echo $steps)
  # 784-D MAF sampling is 784 sequential passes per layer: 100 samples there, 10,000 elsewhere.
  ns=$([ $d = 784 ] && echo 100 || echo 10000)
  for flow in maf realnvp; do
    if [ $flow = maf ]; then layer='{ "maf": { "length": 5, "hidden": [128, 128] } }'; else layer='{ "coupling": { "length": 5, "hidden": [128, 128], "law": "affine" } }'; fi
    cat > "$work/$flow$d.json" <<JSON
{ "name": "$flow$d",
  "model": { "density": { "data": { "csv": { "path": "$work/t$d.csv", "val_fraction": 0.05, "test_fraction": 0.1 } }, "flow": [$layer] } },
  "train": { "steps": $s, "batch_size": 256, "optimizer": { "lr": 0.001 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": $s, "image_every": 0, "checkpoint_every": $s } }
JSON
    ./target/release/flowlab run "$work/$flow$d.json" --out "$work" > /dev/null 2>&1
    /usr/bin/time -f %e -o "$work/t1" ./target/release/flowlab sample "$work/$flow$d" -n 1 --out "$work/x.csv" > /dev/null 2>&1
    /usr/bin/time -f %e -o "$work/tn" ./target/release/flowlab sample "$work/$flow$d" -n $ns --out "$work/x.csv" > /dev/null 2>&1
    "$py" bench/zuko_flows.py --csv "$work/t$d.csv" --flow $flow --steps $s --samples $ns > "$work/z.json"
    "$py" - "$work" $flow $d "$(cat "$work/t1")" "$(cat "$work/tn")" <<'PY'
import json, sys
w, flow, d, t1, tn = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
fl = json.load(open(f"{w}/{flow}{d}/metrics.json"))["steps_per_sec"]
z = json.loads(open(f"{w}/z.json").read())
fs = max(tn - t1, 0.01)
print(f"{flow:<8}{d:>5}{fl:>14.1f}{z['steps_per_sec']:>10.1f}{fl / z['steps_per_sec']:>7.2f}x{fs:>14.2f}s{z['sample_seconds']:>9.2f}s{z['sample_seconds'] / fs:>7.2f}x")
PY
  done
done
