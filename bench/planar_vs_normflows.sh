#!/usr/bin/env bash
# Planar K=16 on U1, batch 256, Adam, one thread: flowlab next to normflows, same model and
# schedule, and the ratio of steps/s. Also flowlab at 2 threads, to show why 1 is the default.
# Then the same for radial K=16 (one thread).
# Usage: bash bench/planar_vs_normflows.sh   (make bench sets up both; STEPS=… to shorten)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-10000}"
py="${FLOWLAB_PYTHON:-python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

config() { # name threads
  cat <<JSON
{ "name": "$1",
  "model": { "flow_fit": { "target": "U1", "flow": [{ "planar": { "length": 16 } }], "eval_samples": 100000 } },
  "train": { "steps": $steps, "batch_size": 256, "optimizer": { "lr": 0.001 },
             "beta": { "start": 0.01, "end": 1.0, "anneal_steps": 5000 }, "seed": 0 },
  "runtime": { "threads": $2, "device": "cpu" },
  "logging": { "log_every": $steps, "image_every": 0, "checkpoint_every": $steps } }
JSON
}
field() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

echo "planar K=16 on U1, batch 256, Adam lr 1e-3, $steps steps, CPU ($(nproc) cores), $(date -u +%F)"
for threads in 1 2; do
  config "flowlab-t$threads" "$threads" > "$work/t$threads.json"
  ./target/release/flowlab run "$work/t$threads.json" --out "$work" > /dev/null 2>&1
done
log_z=$(field "$work/flowlab-t1/metrics.json" log_z)
"$py" bench/planar_normflows.py --steps "$steps" --log-z "$log_z" > "$work/nf.json"
"$py" - "$work" <<'PY'
import json, sys
w = sys.argv[1]
fl = json.load(open(f"{w}/flowlab-t1/metrics.json"))
fl2 = json.load(open(f"{w}/flowlab-t2/metrics.json"))
nf = json.loads(open(f"{w}/nf.json").read())
print(f"{'':24}{'steps/s':>10}{'final F':>10}{'KL(q‖p)':>10}")
print(f"{'flowlab, 1 thread':24}{fl['steps_per_sec']:>10.1f}{fl['free_energy']:>10.4f}{fl['kl']:>10.4f}")
print(f"{'flowlab, 2 threads':24}{fl2['steps_per_sec']:>10.1f}{fl2['free_energy']:>10.4f}{fl2['kl']:>10.4f}")
print(f"{'normflows, 1 thread':24}{nf['steps_per_sec']:>10.1f}{nf['free_energy']:>10.4f}{nf['kl']:>10.4f}")
print(f"ratio flowlab/normflows (1 thread): {fl['steps_per_sec'] / nf['steps_per_sec']:.2f}x")
print(f"ratio flowlab 1 thread / 2 threads: {fl['steps_per_sec'] / fl2['steps_per_sec']:.2f}x")
PY

# Radial K=16, the same protocol, one thread.
sed 's/"planar"/"radial"/' "$work/t1.json" | sed 's/"flowlab-t1"/"radial"/' > "$work/radial.json"
./target/release/flowlab run "$work/radial.json" --out "$work" > /dev/null 2>&1
"$py" bench/planar_normflows.py --flow radial --steps "$steps" --log-z "$log_z" > "$work/nfr.json"
"$py" - "$work" <<'PY'
import json, sys
w = sys.argv[1]
fl = json.load(open(f"{w}/radial/metrics.json"))
nf = json.loads(open(f"{w}/nfr.json").read())
print(f"radial K=16:")
print(f"{'flowlab, 1 thread':24}{fl['steps_per_sec']:>10.1f}{fl['free_energy']:>10.4f}{fl['kl']:>10.4f}")
print(f"{'normflows, 1 thread':24}{nf['steps_per_sec']:>10.1f}{nf['free_energy']:>10.4f}{nf['kl']:>10.4f}")
print(f"ratio flowlab/normflows (1 thread): {fl['steps_per_sec'] / nf['steps_per_sec']:.2f}x")
PY
