#!/usr/bin/env bash
# HI-VAE training-step speed on the release's Adult table (32,561 rows, 12 columns, batch 100,
# one thread, no logging or validation until the end), flowlab now against the revision BASE
# (default 20f44a0: one head per column, each column coded on its own), built once into
# target/bench-base. Goals: the plain step ≥ 3× faster than BASE's, and the masked decoder
# (`experiments/hivae-masked-adult.json`) no slower than 2× the plain step. Each binary and model
# runs REPEAT times (default 3), alternating, and the medians are compared.
# Usage: bash bench/hivae_speed.sh   (make bench BENCH=hivae_speed; STEPS=…, REPEAT=…, BASE=…)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-2000}"
repeat="${REPEAT:-3}"
base="${BASE:-20f44a0}"
src="target/bench-base/src-$base"
if [ ! -x "target/bench-base/release/flowlab-$base" ]; then
  echo "hivae_speed: building revision $base into target/bench-base (once)" >&2
  rm -rf "$src" && mkdir -p "$src"
  git archive "$base" | tar -x -C "$src"
  cargo build --release --quiet --manifest-path "$src/Cargo.toml" --target-dir target/bench-base
  cp target/bench-base/release/flowlab "target/bench-base/release/flowlab-$base"
fi
[ -x target/release/flowlab ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
set_args=(--set train.epochs=null --set "train.steps=$steps" --set train.early_stopping=null
  --set logging.every_epoch=false --set logging.log_every=1000000 --set runtime.threads=1)
speed() { # binary config → steps/s
  "$1" run "$2" --out "$work/runs-$RANDOM" "${set_args[@]}" 2>/dev/null \
    | python3 -c "import json,sys; t=sys.stdin.read(); print(json.loads(t[t.index('{'):t.rindex('}')+1])['steps_per_sec'])"
}
declare -A all=()
for r in $(seq "$repeat"); do
  all[base]+="$(speed "target/bench-base/release/flowlab-$base" experiments/hivae-adult.json) "
  all[plain]+="$(speed target/release/flowlab experiments/hivae-adult.json) "
  all[masked]+="$(speed target/release/flowlab experiments/hivae-masked-adult.json) "
done
python3 - "${all[base]}" "${all[plain]}" "${all[masked]}" "$base" "$steps" <<'PY'
import statistics, sys
med = lambda s: statistics.median(float(v) for v in s.split())
b, p, m = (med(s) for s in sys.argv[1:4])
print(f"HI-VAE on Adult, {sys.argv[5]} steps of batch 100, one thread (median steps/s)")
print(f"{'':<34}{'steps/s':>10}{'ms/step':>10}{'vs base':>10}{'vs plain':>10}")
for name, v in [(f"per-column heads ({sys.argv[4]})", b), ("grouped heads (plain HI-VAE)", p),
                ("grouped heads + masked decoder", m)]:
    print(f"{name:<34}{v:>10.0f}{1000 / v:>10.2f}{v / b:>9.2f}x{p / v:>9.2f}x")
PY
