"""Choose HI-VAE settings on validation cells: run candidate settings on some masks and rank
them by `val_imputation_error` (held-out observed cells, never the masked test cells).

A candidate is NAME=BASE[;KEY=VALUE;...]: the base config experiments/BASE-<dataset>.json with
`flowlab run --set KEY=VALUE` overrides. Runs go to OUT/<dataset>/<name>-mR-S (finished ones are
reused). Each run reports the validation error of every imputation point (mode, mean, median);
the table gives each candidate its best point on validation, its mean validation error over the
masks (the ranking) and, for the record only, the test error of the same runs at that point.

Usage (from the repository root, after `make build`):
  python3 experiments/hivae_select.py --dataset wine --masks 30_1 \
      --candidate plain=hivae --candidate masked=hivae-masked \
      --candidate masked-hide30=hivae-masked;model.hivae.hide_inputs=0.3 --jobs 2
"""
import argparse, json, os, statistics, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

p = argparse.ArgumentParser()
p.add_argument("--dataset", required=True)
p.add_argument("--masks", nargs="+", default=["30_1"], help="RATE_SEED, e.g. 30_1")
p.add_argument("--candidate", action="append", required=True)
p.add_argument("--out", default="runs/hivae-select")
p.add_argument("--jobs", type=int, default=1)
a = p.parse_args()


def parse(c):
    name, _, spec = c.partition("=")
    base, *sets = spec.split(";")
    return name, base, sets


def run(job):
    (name, base, sets), mask = job
    folder = os.path.join(a.out, a.dataset)
    run_name = f"{name}-m{mask}"
    if os.path.exists(os.path.join(folder, run_name, "metrics.json")):
        return job, 0, ""
    cfg = json.load(open(f"experiments/{base}-{a.dataset}.json"))
    cfg["name"] = run_name
    data = cfg["model"]["hivae"]["data"]
    data["missing"]["mask"] = data["missing"]["mask"].replace("Missing20_1", f"Missing{mask}")
    os.makedirs(os.path.join(folder, "configs"), exist_ok=True)
    path = os.path.join(folder, "configs", run_name + ".json")
    json.dump(cfg, open(path, "w"), indent=2)
    cmd = ["./target/release/flowlab", "run", path, "--out", folder]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return job, r.returncode, r.stderr


def metric(name, mask, key):
    try:
        m = json.load(open(os.path.join(a.out, a.dataset, f"{name}-m{mask}", "metrics.json")))
        return m[key]
    except (OSError, KeyError, ValueError):
        return None


cands = [parse(c) for c in a.candidate]
jobs = [(c, m) for c in cands for m in a.masks]
with ThreadPoolExecutor(a.jobs) as pool:
    for ((name, _, _), mask), rc, err in pool.map(run, jobs):
        print(f"{name} m{mask}: {'ok' if rc == 0 else 'FAILED'}", file=sys.stderr, flush=True)
        if rc:
            print(err, file=sys.stderr)


def mean(vals):
    v = [x for x in vals if x is not None]
    return statistics.mean(v) if v else float("nan")


POINTS = ["mode", "mean", "median"]
rows = []
for name, base, sets in cands:
    # The point with the lowest mean validation error (runs without per-point errors: configured).
    per_point = {pt: mean([metric(name, m, f"val_imputation_error_{pt}") for m in a.masks]) for pt in POINTS}
    finite = {pt: v for pt, v in per_point.items() if v == v}
    if finite:
        point = min(finite, key=finite.get)
        val = finite[point]
        test = mean([metric(name, m, f"test_imputation_error_{point}") for m in a.masks])
    else:
        point = "configured"
        val = mean([metric(name, m, "val_imputation_error") for m in a.masks])
        test = mean([metric(name, m, "test_imputation_error") for m in a.masks])
    secs = sum(metric(name, m, "train_seconds") or 0 for m in a.masks)
    rows.append((val, test, secs, name, point, base, sets))
print(f"| {a.dataset} {' '.join(a.masks)} | point | validation error (ranks) | test error | train s | settings |")
print("|---|---|---|---|---|---|")
for val, test, secs, name, point, base, sets in sorted(rows):
    print(f"| {name} | {point} | {val:.4f} | {test:.4f} | {secs:.0f} | {base} {' '.join(sets)} |")
