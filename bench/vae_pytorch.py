"""The flowlab VAE benchmark's twin in plain PyTorch: the same MLP VAE (784-300-300 encoder with
ReLU, linear mean head, variance softplus(.) + 1e-6, decoder mirrored, Bernoulli logits), optionally
with K gated IAF steps (MADE 320-320 with a 64-wide context from the encoder features, orders
reversed between steps, forget bias 1), trained on dynamically binarized MNIST from the same IDX
file with batch 100, Adam (lr 5e-4) and a KL warm-up. Prints one JSON line with steps/s.
"""
import argparse, json, math, struct, time
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--images", required=True)
p.add_argument("--steps", type=int, default=2000)
p.add_argument("--batch", type=int, default=100)
p.add_argument("--latent", type=int, default=64)
p.add_argument("--iaf", type=int, default=0, help="number of IAF steps (0: plain VAE)")
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

raw = open(a.images, "rb").read()
n, rows, cols = struct.unpack(">III", raw[4:16])
x_all = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(n, rows * cols).float() / 255
P, Z, H = rows * cols, a.latent, 300

def mlp(sizes):
    return torch.nn.ModuleList([torch.nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:])])

enc, dec = mlp([P, H, H]), mlp([Z, H, H, P])
mean_head, var_head = torch.nn.Linear(H, Z), torch.nn.Linear(H, Z)

class MADE(torch.nn.Module):
    def __init__(self, order, hidden, ctx):
        super().__init__()
        deg = [torch.tensor(order)] + [torch.arange(h) % (Z - 1) + 1 for h in hidden]
        out_deg = torch.tensor(order).repeat(2)
        sizes = [Z] + hidden + [2 * Z]
        self.lins, self.masks = torch.nn.ModuleList(), []
        for i in range(len(sizes) - 1):
            lin = torch.nn.Linear(sizes[i], sizes[i + 1])
            if i + 1 < len(sizes) - 1:
                m = (deg[i + 1][:, None] >= deg[i][None, :]).float()
            else:
                m = (out_deg[:, None] > deg[i][None, :]).float()
                torch.nn.init.zeros_(lin.weight); torch.nn.init.zeros_(lin.bias)
            self.lins.append(lin); self.masks.append(m)
        self.ctx = torch.nn.Parameter(torch.empty(hidden[0], ctx).uniform_(-0.1, 0.1))
    def forward(self, z, c):
        h = z
        for i, (lin, m) in enumerate(zip(self.lins, self.masks)):
            h = F.linear(h, lin.weight * m, lin.bias)
            if i == 0:
                h = h + F.linear(c, self.ctx)
            if i + 1 < len(self.lins):
                h = torch.relu(h)
        return h.reshape(-1, 2, Z)

orders = [list(range(1, Z + 1)) if k % 2 == 0 else list(range(Z, 0, -1)) for k in range(a.iaf)]
mades = torch.nn.ModuleList([MADE(o, [320, 320], 64) for o in orders])
ctx_head = torch.nn.Linear(H, 64)
params = [*enc.parameters(), *dec.parameters(), *mean_head.parameters(), *var_head.parameters()]
if a.iaf:
    params += [*mades.parameters(), *ctx_head.parameters()]
opt = torch.optim.Adam(params, lr=5e-4)
ln2pi = math.log(2 * math.pi)

def loss_fn(x, beta):
    h = x
    for lin in enc:
        h = torch.relu(lin(h))
    mu, log_var = mean_head(h), torch.log(F.softplus(var_head(h)) + 1e-6)
    z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
    log_q0 = -0.5 * (((z - mu) ** 2) * torch.exp(-log_var) + log_var + ln2pi).sum(1)
    log_det = torch.zeros(len(x))
    if a.iaf:
        c = ctx_head(h)
        for made in mades:
            out = made(z, c)
            s = out[:, 1] + 1.0
            z = torch.sigmoid(s) * z + torch.sigmoid(-s) * out[:, 0]
            log_det = log_det + F.logsigmoid(s).sum(1)
        kl = log_q0 - log_det + 0.5 * (z ** 2 + ln2pi).sum(1)
    else:
        kl = 0.5 * (mu ** 2 + log_var.exp() - 1 - log_var).sum(1)
    l = z
    for i, lin in enumerate(dec):
        l = lin(l)
        if i + 1 < len(dec):
            l = torch.relu(l)
    log_px = (x * l - F.softplus(l)).sum(1)
    return -(log_px - beta * kl).mean()

per_epoch = n // a.batch
t0 = time.perf_counter()
for step in range(a.steps):
    if step % per_epoch == 0:
        perm = torch.randperm(n)
    idx = perm[(step % per_epoch) * a.batch:(step % per_epoch + 1) * a.batch]
    x = torch.bernoulli(x_all[idx])
    loss = loss_fn(x, min(1.0, step / 2400))
    opt.zero_grad(); loss.backward(); opt.step()
secs = time.perf_counter() - t0
print(json.dumps({"steps_per_sec": a.steps / secs, "final_loss": loss.item()}))
