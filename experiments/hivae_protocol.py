"""HI-VAE imputation protocol: every method × dataset × missing rate × mask seed, then a table.

Takes the base configs experiments/<method>-<dataset>.json (written for the mask Missing20_1),
points each at the release's mask MissingR_S.csv, runs it with flowlab into OUT/<method>-<dataset>-mR-S
(runs with a metrics.json are skipped, interrupted ones resumed), and prints the mean ± std over
mask seeds of the test imputation error (the release's metric, averaged over columns) per rate,
beside mean/mode imputation on the same masks; then per method its mean validation error (held-out
observed cells: the figure to choose a method by), time and worst mask, and its test error by
column type.

Usage (from the repository root, after `make build`):
  python3 experiments/hivae_protocol.py --out runs/hivae --jobs 2
  python3 experiments/hivae_protocol.py --out runs/hivae --table-only
"""
import argparse, json, os, statistics, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

p = argparse.ArgumentParser()
p.add_argument("--out", default="runs/hivae")
p.add_argument("--datasets", nargs="+", default=["breast", "wine", "adult"])
p.add_argument("--methods", nargs="+", default=["hivae", "hivae-planar", "hivae-prior-maf"])
p.add_argument("--rates", nargs="+", type=int, default=[10, 20, 30, 40, 50])
p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
p.add_argument("--jobs", type=int, default=1, help="runs at a time (each uses runtime.threads = 1)")
p.add_argument("--table-only", action="store_true")
p.add_argument("--point", choices=["configured", "mode", "mean", "median"], default="configured",
               help="which imputation point's test error the first table shows (every run reports all)")
a = p.parse_args()
os.makedirs(os.path.join(a.out, "configs"), exist_ok=True)

def task(method, ds, rate, seed):
    base = json.load(open(f"experiments/{method}-{ds}.json"))
    name = f"{method}-{ds}-m{rate}-{seed}"
    base["name"] = name
    data = base["model"]["hivae"]["data"]
    data["missing"]["mask"] = data["missing"]["mask"].replace("Missing20_1", f"Missing{rate}_{seed}")
    cfg = os.path.join(a.out, "configs", name + ".json")
    with open(cfg, "w") as f:
        json.dump(base, f, indent=2)
    return name, cfg

def run(t):
    name, cfg = t
    folder = os.path.join(a.out, name)
    if os.path.exists(os.path.join(folder, "metrics.json")):
        return name, 0
    cmd = ["./target/release/flowlab", "run", cfg, "--out", a.out] + (["--resume"] if os.path.isdir(folder) else [])
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        print(f"{name}: failed\n{r.stderr}", file=sys.stderr)
    return name, r.returncode

tasks = [task(m, d, r, s) for d in a.datasets for m in a.methods for r in a.rates for s in a.seeds]
if not a.table_only:
    with ThreadPoolExecutor(a.jobs) as pool:
        for name, rc in pool.map(run, tasks):
            print(f"{name}: {'ok' if rc == 0 else 'FAILED'}", file=sys.stderr, flush=True)

def metric(name, key):
    try:
        return json.load(open(os.path.join(a.out, name, "metrics.json")))[key]
    except (OSError, KeyError, ValueError):
        return None

def cell(values):
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.4f} ± {sd:.4f}" + ("" if len(v) == len(values) else f" ({len(v)} runs)")

cols = ["mean/mode"] + a.methods
print("| data | missing | " + " | ".join(cols) + " |")
print("|---|---|" + "---|" * len(cols))
for d in a.datasets:
    for r in a.rates:
        row = [cell([metric(f"{a.methods[0]}-{d}-m{r}-{s}", "test_mean_mode_error") for s in a.seeds])]
        key = "test_imputation_error" + ("" if a.point == "configured" else f"_{a.point}")
        row += [cell([metric(f"{m}-{d}-m{r}-{s}", key) for s in a.seeds]) for m in a.methods]
        print(f"| {d} | {r}% | " + " | ".join(row) + " |")

# Per method and table: total training time, cells whose imputation had to be replaced (not
# finite), and the worst mask relative to mean/mode imputation on the same cells.
print()
print("| data | method | validation error (mean of runs) | train s (all masks) | imputations replaced | worst mask / mean-mode |")
print("|---|---|---|---|---|---|")
for d in a.datasets:
    for m in a.methods:
        names = [f"{m}-{d}-m{r}-{s}" for r in a.rates for s in a.seeds]
        secs = sum(metric(n, "train_seconds") or 0.0 for n in names)
        clamped = sum(metric(n, "imputations_clamped") or 0.0 for n in names)
        ratios = [metric(n, "test_imputation_error") / metric(n, "test_mean_mode_error")
                  for n in names if metric(n, "test_imputation_error") is not None]
        worst = f"{max(ratios):.3f}" if ratios else "–"
        vals = [v for v in (metric(n, "val_imputation_error") for n in names) if v is not None]
        val = f"{statistics.mean(vals):.4f}" if vals else "–"
        print(f"| {d} | {m} | {val} | {secs:.0f} | {int(clamped)} | {worst} |")

# Per method and table: the test error by column type (mean over every rate and mask), to see
# where the error comes from.
types = ["real", "pos", "count", "cat", "ordinal"]
print()
print("| data | method | " + " | ".join(types) + " |")
print("|---|---|" + "---|" * len(types))
for d in a.datasets:
    for m in a.methods:
        names = [f"{m}-{d}-m{r}-{s}" for r in a.rates for s in a.seeds]
        row = []
        for t in types:
            v = [x for x in (metric(n, f"test_imputation_error_{t}") for n in names) if x is not None]
            row.append(f"{statistics.mean(v):.4f}" if v else "–")
        print(f"| {d} | {m} | " + " | ".join(row) + " |")
