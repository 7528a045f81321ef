#!/usr/bin/env bash
# MAF and RealNVP (5 transforms / layers, hidden 128-128) by maximum likelihood on correlated
# Gaussian tables of D = 2, 13 and 784 columns, batch 256, Adam, one thread: training steps/s and
# the time to draw 10,000 samples, flowlab next to zuko in the same Python environment, with ratios.
# zuko's layers differ in detail (its MAF's scale parameterization, its RealNVP's masks); the sizes,
# passes and batch are the same. Both sampling times are measured inside the process, around the
# draw alone: flowlab's is what `flowlab sample` reports as drawing time (CSV writing and start-up
# excluded), zuko's is `flow().sample(...)` timed in Python. Ratios above 1: flowlab faster.
# zuko's 784-D MAF needs 784 full passes per layer for 10,000 samples: several minutes alone.
# Usage: bash bench/flows_vs_zuko.sh   (make bench runs it; STEPS=… to shorten, DIMS="2 13" and
# FLOWS=maf to run a part, SAMPLES=… to draw fewer)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-1000}"
dims="${DIMS:-2 13 784}"
flows="${FLOWS:-maf realnvp}"
ns="${SAMPLES:-10000}"
py="${FLOWLAB_PYTHON:-python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-8s%5s%14s%10s%8s%15s%10s%8s\n" flow D "train flowlab" zuko ratio "sample flowlab" zuko ratio
for d in $dims; do
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
  for flow in $flows; do
    if [ $flow = maf ]; then layer='{ "maf": { "length": 5, "hidden": [128, 128] } }'; else layer='{ "coupling": { "length": 5, "hidden": [128, 128], "law": "affine" } }'; fi
    cat > "$work/$flow$d.json" <<JSON
{ "name": "$flow$d",
  "model": { "density": { "data": { "csv": { "path": "$work/t$d.csv", "val_fraction": 0.05, "test_fraction": 0.1 } }, "flow": [$layer] } },
  "train": { "steps": $s, "batch_size": 256, "optimizer": { "lr": 0.001 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": $s, "image_every": 0, "checkpoint_every": $s } }
JSON
    ./target/release/flowlab run "$work/$flow$d.json" --out "$work" > /dev/null 2>&1
    # "drew N samples in X s, wrote them to … in Y s": X is the draw alone.
    ./target/release/flowlab sample "$work/$flow$d" -n $ns --out "$work/x.csv" 2> "$work/sample.log" > /dev/null
    "$py" bench/zuko_flows.py --csv "$work/t$d.csv" --flow $flow --steps $s --samples $ns > "$work/z.json"
    "$py" - "$work" $flow $d <<'PY'
import json, re, sys
w, flow, d = sys.argv[1], sys.argv[2], sys.argv[3]
fl = json.load(open(f"{w}/{flow}{d}/metrics.json"))["steps_per_sec"]
z = json.loads(open(f"{w}/z.json").read())
fs = float(re.search(r"drew \d+ samples in ([0-9.]+) s", open(f"{w}/sample.log").read()).group(1))
print(f"{flow:<8}{d:>5}{fl:>14.1f}{z['steps_per_sec']:>10.1f}{fl / z['steps_per_sec']:>7.2f}x{fs:>14.2f}s{z['sample_seconds']:>9.2f}s{z['sample_seconds'] / fs:>7.2f}x")
PY
  done
done
