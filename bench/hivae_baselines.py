"""Baselines for HI-VAE's imputation table, on the release's masks and with its error measure.

For each table of the HI-VAE release (data/hivae/<Name>/: data.csv, data_types.csv,
MissingR_S.csv), missing rate R and mask S: the masked cells (and the cells missing in the file)
are hidden, then filled by
  mean/mode  column mean (real, pos, count) or most frequent class (cat, ordinal),
  MICE       scikit-learn's IterativeImputer (BayesianRidge, 10 rounds, seeded),
  KNN        scikit-learn's KNNImputer (5 neighbours, on standardized columns),
  missForest Stekhoven & Bühlmann (2012), written here on scikit-learn's random forests: start
             from mean/mode, then visit the columns by increasing missingness, each fitted by a
             forest of 100 fully grown trees on the others (mtry √p for `cat` columns, which
             are predicted as classes, p/3 for the rest, predicted as numbers); stop when the
             change between rounds grows for every column kind present (their Δ_N and Δ_F),
             keeping the previous round, at most 10 rounds. Predictors: `cat` columns one-hot,
             the others as numbers,
  HyperImpute Jarrett et al. (2022), the PyPI package 0.1.17 with its defaults (seeded): column-wise
             iterative imputation with a model searched per column; columns with fewer than 5
             distinct values are imputed by its classifiers, the others by its regressors (so
             Adult's larger `cat` columns are treated as numbers),
and scored as flowlab scores HI-VAE (the release's `error_computation`): numerical columns
RMSE / (max − min of the column's true values), categorical columns the error rate, ordinal
columns mean |x − x̂| / levels, averaged over columns. Class columns are re-indexed by their
sorted distinct codes, as the release and flowlab do; MICE and KNN treat them as numbers and
their fills are rounded and clipped to a valid class (their usual use on mixed tables).
Counts are rounded and kept non-negative, positive columns non-negative.

Prints one line per table and rate: mean ± std over masks of each method's error, and the
seconds each method took in all.

Usage (in the environment `make setup-bench` prepares; scikit-learn comes with `make data`):
  python bench/hivae_baselines.py [--data data/hivae] [--tables Breast Wine Adult]
"""
import argparse, csv, os, statistics, time, warnings
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import IterativeImputer, KNNImputer

# IterativeImputer warns when 10 rounds do not meet its tolerance; the fill is used as it is.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

p = argparse.ArgumentParser()
p.add_argument("--data", default="data/hivae")
p.add_argument("--tables", nargs="+", default=["Breast", "Wine", "Adult"])
p.add_argument("--rates", nargs="+", type=int, default=[10, 20, 30, 40, 50])
p.add_argument("--masks", nargs="+", type=int, default=[1, 2, 3])
p.add_argument("--methods", nargs="+", default=["mean/mode", "MICE", "KNN", "missForest", "HyperImpute"])
p.add_argument("--jobs", type=int, default=1, help="cores for missForest's forests")
a = p.parse_args()


def rows(path):
    # Any line ending (Breast's types file is CR-only), blank lines skipped.
    with open(path, newline="") as f:
        text = f.read().replace("\r\n", "\n").replace("\r", "\n")
    return [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]


def load(name):
    d = os.path.join(a.data, name)
    types = [(r[0].strip(), int(r[2] or r[1]) if r[0].strip() in ("cat", "ordinal") else 1)
             for r in rows(os.path.join(d, "data_types.csv"))[1:]]
    x = np.array([[float(c) if c.strip() and c.strip().lower() != "nan" else np.nan for c in r]
                  for r in rows(os.path.join(d, "data.csv"))])
    for j, (t, _) in enumerate(types):
        if t in ("cat", "ordinal"):
            col = x[:, j]
            ok = ~np.isnan(col)
            codes = np.unique(col[ok])
            col[ok] = np.searchsorted(codes, col[ok]) + 1.0
    return types, x


def mask(name, rate, seed, shape):
    m = np.zeros(shape, dtype=bool)
    for r in rows(os.path.join(a.data, name, f"Missing{rate}_{seed}.csv")):
        m[int(r[0]) - 1, int(r[1]) - 1] = True
    return m


def to_support(types, fill):
    out = fill.copy()
    for j, (t, k) in enumerate(types):
        if t in ("cat", "ordinal"):
            out[:, j] = np.clip(np.round(out[:, j]), 1, k)
        elif t == "count":
            out[:, j] = np.maximum(np.round(out[:, j]), 0)
        elif t == "pos":
            out[:, j] = np.maximum(out[:, j], 0)
    return out


def mean_mode(types, x_obs):
    out = x_obs.copy()
    for j, (t, _) in enumerate(types):
        col = x_obs[:, j]
        seen = col[~np.isnan(col)]
        if t in ("cat", "ordinal"):
            vals, counts = np.unique(seen, return_counts=True)
            v = vals[np.argmax(counts)]
        else:
            v = seen.mean()
        out[np.isnan(col), j] = v
    return out


def mice(types, x_obs):
    return IterativeImputer(max_iter=10, random_state=0).fit_transform(x_obs)


def knn(types, x_obs):
    mu, sd = np.nanmean(x_obs, 0), np.nanstd(x_obs, 0)
    sd[sd == 0] = 1.0
    z = KNNImputer(n_neighbors=5).fit_transform((x_obs - mu) / sd)
    return z * sd + mu


def missforest(types, x_obs, max_rounds=10):
    miss = np.isnan(x_obs)
    fill = mean_mode(types, x_obs)
    is_cat = np.array([t == "cat" for t, _ in types])
    p = len(types)

    def predictors(f, j):
        cols = []
        for i, (t, k) in enumerate(types):
            if i == j:
                continue
            cols.append(np.eye(k)[f[:, i].astype(int) - 1] if t == "cat" else f[:, i:i + 1])
        return np.hstack(cols)

    order = [j for j in np.argsort(miss.sum(0), kind="stable") if miss[:, j].any()]
    prev_delta = (np.inf, np.inf)
    for rnd in range(max_rounds):
        old = fill.copy()
        for j in order:
            X = predictors(fill, j)
            obs, mis = ~miss[:, j], miss[:, j]
            if is_cat[j]:
                rf = RandomForestClassifier(100, max_features="sqrt", n_jobs=a.jobs, random_state=rnd)
            else:
                rf = RandomForestRegressor(100, max_features=max(1, (p - 1) // 3) / X.shape[1],
                                           n_jobs=a.jobs, random_state=rnd)
            rf.fit(X[obs], fill[obs, j])
            fill[mis, j] = rf.predict(X[mis])
        num = miss & ~is_cat[None, :]
        cat = miss & is_cat[None, :]
        d_n = ((fill - old)[num] ** 2).sum() / max((fill[num] ** 2).sum(), 1e-12) if num.any() else 0.0
        d_f = (fill[cat] != old[cat]).sum() / max(cat.sum(), 1) if cat.any() else 0.0
        grew = [d > pd for d, pd, present in zip((d_n, d_f), prev_delta, (num.any(), cat.any())) if present]
        if grew and all(grew):
            return old
        prev_delta = (d_n, d_f)
    return fill


def hyperimpute(types, x_obs):
    import pandas as pd
    from hyperimpute.plugins.imputers import Imputers
    warnings.filterwarnings("ignore")
    plugin = Imputers().get("hyperimpute", random_state=0)
    return plugin.fit_transform(pd.DataFrame(x_obs)).to_numpy(dtype=float)


def error(types, x, fill, cells, keep=lambda t: True):
    errs = []
    for j, (t, k) in enumerate(types):
        c = cells[:, j]
        if not c.any() or not keep(t):
            continue
        d = x[c, j] - fill[c, j]
        if t == "cat":
            errs.append(np.mean(d != 0))
        elif t == "ordinal":
            errs.append(np.mean(np.abs(d)) / k)
        else:
            present = x[~np.isnan(x[:, j]), j]
            errs.append(np.sqrt(np.mean(d ** 2)) / max(present.max() - present.min(), 1e-12))
    return float(np.mean(errs)) if errs else float("nan")


known = {"mean/mode": mean_mode, "MICE": mice, "KNN": knn, "missForest": missforest,
         "HyperImpute": hyperimpute}
methods = [(m, known[m]) for m in a.methods]
print(f"{'table':<8}{'missing':>8}" + "".join(f"{m:>22}" for m, _ in methods))
for name in a.tables:
    types, x = load(name)
    secs = {m: 0.0 for m, _ in methods}
    kinds = sorted({t for t, _ in types})
    by_type = {m: {t: [] for t in kinds} for m, _ in methods}
    for rate in a.rates:
        res = {m: [] for m, _ in methods}
        for s in a.masks:
            hidden = mask(name, rate, s, x.shape)
            cells = hidden & ~np.isnan(x)
            x_obs = np.where(hidden, np.nan, x)
            for m, f in methods:
                t0 = time.perf_counter()
                fill = to_support(types, f(types, x_obs))
                secs[m] += time.perf_counter() - t0
                res[m].append(error(types, x, fill, cells))
                for t in kinds:
                    by_type[m][t].append(error(types, x, fill, cells, lambda k: k == t))
        cells_txt = "".join(
            f"{statistics.mean(v):>13.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}"
            for v in res.values())
        print(f"{name:<8}{rate:>7}%{cells_txt}", flush=True)
    print(f"{name}: seconds " + ", ".join(f"{m} {t:.1f}" for m, t in secs.items()), flush=True)
    # By column type, mean over every rate and mask (as the protocol's table for HI-VAE).
    for m, _ in methods:
        print(f"{name}: {m} by type " + ", ".join(
            f"{t} {statistics.mean(v):.4f}" for t, v in by_type[m].items()), flush=True)
