#!/usr/bin/env bash
# Installs what flowlab needs, if missing: a Python virtual environment holding the torch wheel
# whose libtorch tch links against, plus the Python tools the tests (tensorboard, safetensors,
# normflows, nbformat) or benchmarks (zuko, scikit-learn) use. Idempotent and quick when
# everything is there.
# Usage: setup.sh VENV TORCH_VERSION base|test|bench
set -euo pipefail
venv="$1"; torch_version="$2"; level="${3:-base}"

if [ -n "${LIBTORCH:-}" ] && [ "$level" = base ]; then
  echo "setup: using LIBTORCH=$LIBTORCH"
  exit 0
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
py=$(command -v python3 || true)
[ -n "$py" ] || { echo "setup: python3 not found; it is needed to fetch libtorch from PyPI" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off)
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$torch_version' else 1)" 2>/dev/null; then
  echo "setup: installing torch==$torch_version into $venv (once; a few GB)"
  "${pip[@]}" "torch==$torch_version"
fi
need() { "$venv/bin/python" -c "import $1" 2>/dev/null || "${pip[@]}" "torch==$torch_version" "$2"; }
case "$level" in
  test) need tensorboard tensorboard; need safetensors safetensors; need numpy numpy; need nbformat nbformat; need normflows normflows ;;
  bench) need normflows normflows; need numpy numpy; need safetensors safetensors; need zuko zuko; need sklearn scikit-learn
    # HyperImpute 0.1.17 (the HI-VAE baselines): its own dependencies minus the TensorFlow-based
    # MIRACLE plugin and the notebook tools, so it installs --no-deps after them. It needs
    # scikit-learn < 1.7 (it passes LogisticRegression's removed `multi_class`) and pandas < 3
    # (under pandas 3's copy-on-write its imputations are silently never written back: every
    # cell keeps the initial mean fill).
    if ! "$venv/bin/python" -c "import hyperimpute" 2>/dev/null; then
      "${pip[@]}" "torch==$torch_version" "scikit-learn==1.6.1" "pandas<3" catboost "optuna>=3.1" "loguru==0.6.0" xgboost lightgbm cloudpickle geomloss pydantic redis
      "${pip[@]}" --no-deps "hyperimpute==0.1.17"
    fi ;;
esac
