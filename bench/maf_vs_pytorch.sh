#!/usr/bin/env bash
# MAF (5 layers, MADE 64-64) by maximum likelihood on a 30-column table, batch 256, Adam, one
# thread: flowlab next to the same model in plain PyTorch, and the ratio of steps/s. Then MAF's
# sampling time in flowlab as D grows (D sequential passes per layer).
# Usage: bash bench/maf_vs_pytorch.sh   (make bench runs it; STEPS=… to shorten)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-3000}"
py="${FLOWLAB_PYTHON:-python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A correlated 30-D Gaussian table (20,000 rows), the same file for both.
"$py" - "$work/table.csv" <<'PY'
import sys, torch
torch.manual_seed(0)
D = 30
L = torch.randn(D, D).tril() * 0.3 + torch.eye(D)
x = torch.randn(20000, D) @ L.T + torch.randn(D) * 5
with open(sys.argv[1], "w") as f:
    f.write(",".join(f"c{i}" for i in range(D)) + "\n")
    for r in x.tolist():
        f.write(",".join(f"{v:.6f}" for v in r) + "\n")
PY
cat > "$work/maf.json" <<JSON
{ "name": "maf",
  "model": { "density": { "data": { "csv": { "path": "$work/table.csv", "val_fraction": 0.05, "test_fraction": 0.1 } },
                           "flow": [{ "maf": { "length": 5, "hidden": [64, 64] } }] } },
  "train": { "steps": $steps, "batch_size": 256, "optimizer": { "lr": 0.001 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": $steps, "image_every": 0, "checkpoint_every": $steps } }
JSON
./target/release/flowlab run "$work/maf.json" --out "$work" > /dev/null 2>&1
"$py" bench/maf_pytorch.py --csv "$work/table.csv" --steps "$steps" > "$work/torch.json"
"$py" - "$work" "$steps" <<'PY'
import json, sys
w, steps = sys.argv[1], sys.argv[2]
fl = json.load(open(f"{w}/maf/metrics.json"))
pt = json.loads(open(f"{w}/torch.json").read())
print(f"MAF, 5 layers, MADE 64-64, D = 30, batch 256, {steps} steps, 1 thread")
print(f"{'':22}{'steps/s':>10}{'test NLL':>10}")
print(f"{'flowlab':22}{fl['steps_per_sec']:>10.1f}{fl['test_nll']:>10.3f}")
print(f"{'PyTorch (same model)':22}{pt['steps_per_sec']:>10.1f}{pt['test_nll']:>10.3f}")
print(f"ratio flowlab/PyTorch: {fl['steps_per_sec'] / pt['steps_per_sec']:.2f}x")
PY
# Sampling cost grows with D: time of `flowlab sample -n 20000` minus that of `-n 1` (start-up).
echo "MAF sampling in flowlab (5 layers, 20,000 samples; D passes per layer):"
for d in 2 8 32; do
  cat > "$work/s$d.json" <<JSON
{ "name": "s$d", "model": { "density": { "data": { "toy": { "name": "moons", "n_train": 1000, "n_val": 100, "n_test": 100 } },
  "flow": [{ "maf": { "length": 5, "hidden": [64, 64] } }] } },
  "train": { "steps": 1 }, "runtime": { "threads": 1, "device": "cpu" } }
JSON
  if [ "$d" != 2 ]; then
    "$py" -c "import random; random.seed(0); print(','.join(f'c{i}' for i in range($d))); [print(','.join(str(random.gauss(0,1)) for _ in range($d))) for _ in range(1000)]" > "$work/g$d.csv"
    sed -i "s|{ \"toy\": { \"name\": \"moons\", \"n_train\": 1000, \"n_val\": 100, \"n_test\": 100 } }|{ \"csv\": { \"path\": \"$work/g$d.csv\" } }|" "$work/s$d.json"
  fi
  ./target/release/flowlab run "$work/s$d.json" --out "$work" > /dev/null 2>&1
  /usr/bin/time -f %e -o "$work/t1" ./target/release/flowlab sample "$work/s$d" -n 1 --out "$work/x.csv" > /dev/null 2>&1
  /usr/bin/time -f %e -o "$work/tn" ./target/release/flowlab sample "$work/s$d" -n 20000 --out "$work/x.csv" > /dev/null 2>&1
  echo "  D = $d: $(echo "$(cat "$work/tn") - $(cat "$work/t1")" | bc -l | sed 's/^\./0./') s (including writing the CSV)"
done
