#!/usr/bin/env bash
# Regenerates the walkthrough notebooks in notebooks-export/ from real runs.
# Usage: bash notebooks-export/make.sh [RUNS_ROOT]      (or `make notebooks`; default runs/notebooks)
# Each run is trained into RUNS_ROOT unless RUNS_ROOT/<name>/metrics.json exists already, so runs
# made earlier (e.g. by experiments/hivae_protocol.py --out RUNS_ROOT) are reused. From scratch on
# 2 CPU cores the MNIST comparison dominates (about 2.5 hours for its 11 runs, two at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-runs/notebooks}"
flowlab=./target/release/flowlab
mkdir -p "$root"

need() { # config files…: train the ones without metrics.json, two at a time
  local todo=()
  for cfg in "$@"; do
    name=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['name'])" "$cfg")
    [ -f "$root/$name/metrics.json" ] || todo+=("$cfg")
  done
  if [ ${#todo[@]} -gt 0 ]; then
    printf '%s\n' "${todo[@]}" | xargs -P2 -I{} sh -c "$flowlab run {} --out $root > /dev/null 2>&1 || echo 'failed: {}' >&2"
  fi
}
runs() { for n in "$@"; do printf '%s ' "$root/$n"; done; }

need experiments/planar-u1-k8.json experiments/radial-u1-k8.json
"$flowlab" plot fig1 --out "$root/planar-u1-k8/figures/fig1.png"
"$flowlab" export $(runs planar-u1-k8 radial-u1-k8) --out notebooks-export/change-of-variables.ipynb --figures fig1,samples \
  --title "Change of variables: N(0, I) through planar and radial layers" \
  --intro "fig1.png is Rezende & Mohamed (2015)'s Fig. 1 (N(0, I), after one planar layer u = (1, 0), w = (5, 0), b = 0, after one radial layer z0 = (0.5, 0), α = 0.5, β = 1); the two runs fit 8 such layers to U1 by reverse KL."

need experiments/planar-u{1,2,3,4}-k8.json experiments/radial-u{1,2,3,4}-k8.json
"$flowlab" export $(runs planar-u{1,2,3,4}-k8 radial-u{1,2,3,4}-k8) --out notebooks-export/flows-on-u1-u4.ipynb --figures samples \
  --title "Planar and radial flows (K = 8) on the targets U1–U4" \
  --intro "Reverse-KL fits of Rezende & Mohamed's four energies; KL(q‖p) = F + ln Z is in each run's metrics."

need experiments/density-{nice,realnvp,maf}-{moons,checkerboard}.json
"$flowlab" export $(runs density-{nice,realnvp,maf}-{moons,checkerboard}) --out notebooks-export/density-estimation.ipynb --figures density \
  --title "Density estimation: NICE, RealNVP and MAF on two toy sets" \
  --intro "Maximum likelihood on 20,000 points; test NLL in nats in each run's metrics."

need experiments/mnist-vae-z2.json experiments/mnist-vae-z5.json experiments/mnist-ae.json
"$flowlab" export $(runs mnist-vae-z2 mnist-vae-z5 mnist-ae) --out notebooks-export/vae-latent-space.ipynb --figures latent_codes,posterior_samples,latent_sweep \
  --title "The VAE and its latent space" \
  --intro "A 2-D latent VAE (codes coloured by digit), a 5-D latent VAE (posterior samples of one digit; sweeps of three latent dimensions), and a deterministic autoencoder (Hinton & Salakhutdinov 2006)."

mnist=(mnist-vae mnist-planar-k4 mnist-planar-k16 mnist-radial-k4 mnist-iaf-k4 mnist-o-snf-k4 mnist-h-snf-k4 mnist-t-snf-k4)
need $(for n in "${mnist[@]}"; do printf 'experiments/%s.json ' "$n"; done)
"$flowlab" export $(runs "${mnist[@]}") --out notebooks-export/vae-flow-posteriors.ipynb --figures reconstructions,prior_samples \
  --title "VAEs with flow posteriors on MNIST" \
  --intro "Identical MLP encoder/decoder (784-300-300, latent 64), budget and seed; only the posterior differs. Test -ELBO and importance-weighted NLL (S = 5000) in each run's metrics."

need experiments/hivae{,-planar,-prior-maf}-breast.json experiments/hivae{,-planar,-prior-maf}-wine.json
"$flowlab" export $(runs hivae-breast-m20-1 hivae-planar-breast-m20-1 hivae-prior-maf-breast-m20-1 hivae-wine-m20-1 hivae-planar-wine-m20-1 hivae-prior-maf-wine-m20-1) \
  --out notebooks-export/missing-data-imputation.ipynb \
  --title "Imputing missing heterogeneous data: HI-VAE with flows" \
  --intro "The release's Breast and Wine tables with 20% of cells masked (mask 1): HI-VAE, HI-VAE with a planar posterior, HI-VAE with a MAF prior; test_imputation_error beside test_mean_mode_error. The full protocol (all rates and masks) is experiments/hivae_protocol.py."
echo "notebooks written to notebooks-export/ from runs under $root"
