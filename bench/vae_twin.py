"""flowlab's MNIST VAE family re-written in plain PyTorch, for equal-budget comparisons.

The twin starts from the very weights flowlab starts from (a flowlab run with `train.steps: 0`
writes them to model.safetensors), sees the same training batches in the same order (flowlab's
splitmix64 shuffle, re-implemented here), the same validation and test bits (flowlab's fixed
binarization, re-implemented), and trains with the same loss (one-sample ELBO with a linear KL
warm-up), Adam and number of steps. Only the reparameterization noise and the dynamic
binarization of training batches are drawn by torch's own generator, so the two codes differ by
seed noise alone. Prints one JSON line: test -ELBO, test NLL (importance sampling), steps/s.

Posteriors (the papers' forms, as flowlab builds them):
- gaussian: q0 = N(mu, softplus(.) + 1e-6), analytic KL (Kingma & Welling 2014, App. B);
- planar K (Rezende & Mohamed 2015, eq. 10-12; u_hat with m(x) = -1 + softplus(x));
- iaf K (Kingma et al. 2016, eq. 11-14): gated steps z' = s z + (1 - s) m, s = sigmoid(. + 1),
  MADEs (Germain et al. 2015) with flowlab's degrees (inputs in order, reversed every other
  step; hidden units cycling through 1..D-1) reading a context computed from h;
- t_snf K (van den Berg et al. 2018): z' = z + Q R1 tanh(R2 Q^T z + b), Q the identity or the
  reversal in alternate layers, R1/R2 sharing one amortized full matrix, diagonals 0.9999 tanh.
"""
import argparse, json, math, struct, time
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

p = argparse.ArgumentParser()
p.add_argument("--mnist", required=True, help="folder with the split's IDX files (make mnist)")
p.add_argument("--init", required=True, help="flowlab's model.safetensors at step 0")
p.add_argument("--posterior", choices=["gaussian", "planar", "iaf", "t_snf"], default="gaussian")
p.add_argument("--forget-bias", type=float, default=1.0)
p.add_argument("--length", type=int, default=4)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--anneal-epochs", type=int, default=10)
p.add_argument("--lr", type=float, default=5e-4)
p.add_argument("--batch", type=int, default=100)
p.add_argument("--samples", type=int, default=1000, help="importance samples for the test NLL")
p.add_argument("--data-seed", type=int, default=0)
p.add_argument("--seed", type=int, default=0, help="torch's seed (noise draws)")
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def uniforms(seed, n):
    """flowlab's Rng::new(seed).uniform() n times, vectorized."""
    s0 = np.uint64(seed ^ 0x5DEECE66D1CE4E5B)
    with np.errstate(over="ignore"):
        z = s0 + np.uint64(GOLDEN) * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def epoch_order(seed, epoch, rows):
    """flowlab's EpochBatches order: Fisher-Yates with Rng::for_epoch(seed, epoch)."""
    state = (seed ^ ((epoch * GOLDEN) & MASK)) ^ 0x5DEECE66D1CE4E5B
    perm = list(range(rows))
    for i in range(rows - 1, 0, -1):
        state = (state + GOLDEN) & MASK
        u = (mix(state) >> 11) / float(1 << 53)
        j = int(u * (i + 1)) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def idx(path):
    raw = open(path, "rb").read()
    n, rows, cols = struct.unpack(">III", raw[4:16])
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows * cols).astype(np.float32) / np.float32(255)


def fixed_bits(grey, seed):
    u = uniforms(seed, grey.size).astype(np.float32).reshape(grey.shape)
    return torch.from_numpy((u < grey).astype(np.float32))


train = torch.from_numpy(idx(f"{a.mnist}/train-images-idx3-ubyte"))
test = fixed_bits(idx(f"{a.mnist}/test-images-idx3-ubyte"), a.data_seed ^ 0x5EED0002)
w = load_file(a.init)
P = {k: torch.nn.Parameter(v.clone()) for k, v in w.items()}
Z = P["encoder.mean.weight"].shape[0]


def lin(x, name):
    return F.linear(x, P[f"{name}.weight"], P[f"{name}.bias"])


def encode(x):
    h = x
    i = 0
    while f"encoder.{i}.weight" in P:
        h = lin(h, f"encoder.{i}").relu()
        i += 1
    return h


def decode(z):
    n = sum(1 for k in P if k.startswith("decoder.") and k.endswith(".weight"))
    h = z
    for i in range(n):
        h = lin(h, f"decoder.{i}")
        if i + 1 < n:
            h = h.relu()
    return h


LN2PI = math.log(2 * math.pi)


def normal_lp(z, mean, log_var):
    return -0.5 * (((z - mean) ** 2) * torch.exp(-log_var) + log_var + LN2PI).sum(-1)


def made_masks(D, hidden, reverse):
    order = list(range(D, 0, -1)) if reverse else list(range(1, D + 1))
    degs = [torch.tensor(order)] + [torch.arange(n) % (D - 1) + 1 for n in hidden]
    masks = [(degs[i + 1][:, None] >= degs[i][None, :]).float() for i in range(len(hidden))]
    out = torch.tensor(order).repeat(2)
    masks.append((out[:, None] > degs[-1][None, :]).float())
    return masks


MASKS = {}


def iaf_step(z, c, k):
    if k not in MASKS:
        hidden = []
        while f"posterior.made.{k}.{len(hidden)}.weight" in P and f"posterior.made.{k}.{len(hidden) + 1}.weight" in P:
            hidden.append(P[f"posterior.made.{k}.{len(hidden)}.weight"].shape[0])
        MASKS[k] = made_masks(z.shape[1], hidden, k % 2 == 1)
    h = z
    n = len(MASKS[k])
    for i, m in enumerate(MASKS[k]):
        h = F.linear(h, P[f"posterior.made.{k}.{i}.weight"] * m, P[f"posterior.made.{k}.{i}.bias"])
        if i == 0:
            h = h + F.linear(c, P[f"posterior.made.{k}.context_weight"])
        if i + 1 < n:
            h = h.relu()
    out = h.reshape(z.shape[0], 2, z.shape[1])
    s = out[:, 1] + a.forget_bias
    return out[:, 0] * torch.sigmoid(-s) + torch.sigmoid(s) * z, F.logsigmoid(s).sum(-1)


def flow(h, z, K):
    """z_K and sum of log|det| for features h (rows of z are rows of h)."""
    if a.posterior == "gaussian":
        return z, torch.zeros(z.shape[0])
    log_det = torch.zeros(z.shape[0])
    if a.posterior == "iaf":
        c = lin(h, "posterior.context")
        for k in range(K):
            z, ld = iaf_step(z, c, k)
            log_det = log_det + ld
        return z, log_det
    raw = lin(h, "posterior.head").reshape(h.shape[0], K, -1)
    D = z.shape[1]
    for k in range(K):
        o = raw[:, k]
        if a.posterior == "planar":
            u, wv, b = o[:, :D], o[:, D:2 * D], o[:, 2 * D]
            wu = (wv * u).sum(-1)
            u_hat = u + ((F.softplus(wu) - 1 - wu) / (wv * wv).sum(-1).clamp_min(1e-12))[:, None] * wv
            t = torch.tanh((wv * z).sum(-1) + b)
            z = z + u_hat * t[:, None]
            log_det = log_det + torch.log((1 + (1 - t * t) * (wv * u_hat).sum(-1)).abs())
        else:
            full = o[:, :D * D].reshape(-1, D, D)
            d1, d2 = o[:, D * D:D * D + D], o[:, D * D + D:D * D + 2 * D]
            b = o[:, D * D + 2 * D:]
            c = 1 - 1e-4
            r1 = torch.triu(full, 1) + torch.diag_embed(c * torch.tanh(d1))
            r2 = torch.triu(full.transpose(1, 2), 1) + torch.diag_embed(c * torch.tanh(d2))
            qz = z.flip(1) if k % 2 == 1 else z
            t = torch.tanh(torch.bmm(r2, qz[:, :, None])[:, :, 0] + b)
            shift = torch.bmm(r1, t[:, :, None])[:, :, 0]
            z = z + (shift.flip(1) if k % 2 == 1 else shift)
            diag = torch.diagonal(r1, dim1=1, dim2=2) * torch.diagonal(r2, dim1=1, dim2=2)
            log_det = log_det + torch.log((1 + (1 - t * t) * diag).abs()).sum(-1)
    return z, log_det


def terms(x, samples=1):
    """ln p(x|z_K) and the KL estimate per (row, sample), samples sample-major within a row."""
    h = encode(x)
    mean, log_var = lin(h, "encoder.mean"), torch.log(F.softplus(lin(h, "encoder.var")) + 1e-6)
    rep = lambda t: t.repeat_interleave(samples, 0)
    h, mean, log_var, xr = rep(h), rep(mean), rep(log_var), rep(x)
    z0 = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    z, log_det = flow(h, z0, a.length)
    logits = decode(z)
    log_px = (xr * logits - F.softplus(logits)).sum(-1)
    if a.posterior == "gaussian" and samples == 1:
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum(-1)
    else:
        kl = normal_lp(z0, mean, log_var) - log_det - normal_lp(z, torch.zeros_like(z), torch.zeros_like(z))
    return log_px, kl


opt = torch.optim.Adam(P.values(), lr=a.lr)
rows = train.shape[0]
per_epoch = max(rows // a.batch, 1)
steps = a.epochs * per_epoch
anneal = a.anneal_epochs * per_epoch
t0 = time.time()
for step in range(steps):
    epoch, i = divmod(step, per_epoch)
    if i == 0:
        order = torch.tensor(epoch_order(a.data_seed, epoch, rows))
    x = torch.bernoulli(train[order[i * a.batch:(i + 1) * a.batch]])
    beta = min(1.0, step / anneal) if anneal > 0 else 1.0
    log_px, kl = terms(x)
    loss = -(log_px - beta * kl).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
elapsed = time.time() - t0

with torch.no_grad():
    elbo, nll = [], []
    for x in test.split(100):
        log_px, kl = terms(x)
        elbo.append(log_px - kl)
    chunk = max(1, 2000 // a.samples) if a.samples < 2000 else 1
    for x in test.split(chunk):
        log_px, kl = terms(x, a.samples)
        log_w = (log_px - kl).reshape(x.shape[0], a.samples)
        nll.append(-(torch.logsumexp(log_w.double(), 1) - math.log(a.samples)))
print(json.dumps({
    "posterior": a.posterior, "seed": a.seed, "steps": steps,
    "test_elbo": torch.cat(elbo).mean().item(), "test_nll": torch.cat(nll).mean().item(),
    "steps_per_sec": steps / elapsed, "train_s": elapsed,
}))
