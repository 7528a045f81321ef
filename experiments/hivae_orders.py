"""Masked-decoder HI-VAE runs re-evaluated with point imputations pooled over R column orders.

For each finished run RUNS/<method>-<dataset>-mR-S of experiments/hivae_protocol.py (a masked
decoder trained with a random or shown_first order), runs `flowlab eval RUN --samples R` (R column
orders, each with the row's observed cells first in a random order; the heads' likelihoods pooled
before the point is read) and keeps its metrics as OUT/<run>-o<R>.json. No retraining: the weights
are the run's; R = 1 is read from the run's metrics.json. Then prints, per method and table, the mean validation error over every rate and
mask for each R (the figure to choose R by) and the test error per rate (mean ± sd over masks).

Usage (from the repository root, after `make build` and the protocol's runs):
  python3 experiments/hivae_orders.py --runs runs/hivae --out runs/hivae-orders \
      --methods hivae-best --datasets wine --orders 1 4 16 32 --jobs 2
"""
import argparse, json, os, statistics, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

p = argparse.ArgumentParser()
p.add_argument("--runs", default="runs/hivae")
p.add_argument("--out", default="runs/hivae-orders")
p.add_argument("--datasets", nargs="+", default=["breast", "wine"])
p.add_argument("--methods", nargs="+", default=["hivae-best"])
p.add_argument("--orders", nargs="+", type=int, default=[1, 4, 16])
p.add_argument("--rates", nargs="+", type=int, default=[10, 20, 30, 40, 50])
p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
p.add_argument("--jobs", type=int, default=1)
p.add_argument("--table-only", action="store_true")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)

def out_file(run, r):
    # One order is the run's own evaluation (imputation in one order is deterministic).
    if r == 1:
        return os.path.join(a.runs, run, "metrics.json")
    return os.path.join(a.out, f"{run}-o{r}.json")

def evaluate(job):
    run, r = job
    f = out_file(run, r)
    if os.path.exists(f) or not os.path.exists(os.path.join(a.runs, run, "metrics.json")):
        return run, r, 0
    res = subprocess.run(["./target/release/flowlab", "eval", os.path.join(a.runs, run),
                          "--samples", str(r)], capture_output=True, text=True)
    if res.returncode == 0:
        with open(f + ".tmp", "w") as g:
            g.write(res.stdout)
        os.replace(f + ".tmp", f)
    else:
        print(f"{run} R={r}: failed\n{res.stderr}", file=sys.stderr)
    return run, r, res.returncode

names = {(m, d): [f"{m}-{d}-m{rate}-{s}" for rate in a.rates for s in a.seeds]
         for d in a.datasets for m in a.methods}
jobs = [(n, r) for ns in names.values() for n in ns for r in a.orders]
if not a.table_only:
    with ThreadPoolExecutor(a.jobs) as pool:
        for run, r, rc in pool.map(evaluate, jobs):
            print(f"{run} R={r}: {'ok' if rc == 0 else 'FAILED'}", file=sys.stderr, flush=True)

def metric(run, r, key):
    try:
        return json.load(open(out_file(run, r)))[key]
    except (OSError, KeyError, ValueError):
        return None

def mean_sd(values):
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.4f} ± {sd:.4f}" + ("" if len(v) == len(values) else f" ({len(v)} runs)")

print("| data | method | R | validation error (mean of runs) | " +
      " | ".join(f"test {rate}%" for rate in a.rates) + " |")
print("|---|---|---|---|" + "---|" * len(a.rates))
for (m, d), ns in names.items():
    for r in a.orders:
        vals = [v for v in (metric(n, r, "val_imputation_error") for n in ns) if v is not None]
        val = f"{statistics.mean(vals):.4f}" if vals else "–"
        tests = [mean_sd([metric(f"{m}-{d}-m{rate}-{s}", r, "test_imputation_error") for s in a.seeds])
                 for rate in a.rates]
        print(f"| {d} | {m} | {r} | {val} | " + " | ".join(tests) + " |")
