"""Export scikit-learn's bundled real tables to CSV (with a header) for flowlab density runs.

Usage: python data/export_sklearn.py [OUT_DIR]   (default: data/tabular; `make data` runs it)
Writes wine.csv (178 × 13), breast_cancer.csv (569 × 30) and digits.csv (1797 × 64): the features
only (targets dropped), as shipped with scikit-learn, so no download is needed.
"""
import csv, os, sys
from sklearn import datasets

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "tabular")
os.makedirs(out, exist_ok=True)
for name, loader in [("wine", datasets.load_wine), ("breast_cancer", datasets.load_breast_cancer), ("digits", datasets.load_digits)]:
    bunch = loader()
    header = [str(f).replace(",", " ").replace(" ", "_") for f in getattr(bunch, "feature_names", [])] or [f"x{i}" for i in range(bunch.data.shape[1])]
    path = os.path.join(out, f"{name}.csv")
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(bunch.data.tolist())
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: {bunch.data.shape[0]} rows x {bunch.data.shape[1]} columns")
