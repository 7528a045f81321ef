"""The flowlab RealNVP-on-MNIST benchmark's twin in plain PyTorch: the same multi-scale RealNVP
(levels 2, 3 checkerboard couplings, squeeze, 3 channel couplings, split with a learned conditional
prior, then 4 checkerboard couplings and a learned per-channel top prior), coupling networks
3x3 conv - ReLU - 1x1 conv - ReLU - zero-initialized 3x3 conv, scales bounded as 3 tanh(s/3),
uniform dequantization and the logit transform (alpha 0.05), Adam, batch 64, on the same IDX file.
With --channels-last the coupling networks' weights and inputs use torch.channels_last (NHWC
strides), the layout flowlab's conv conditioners run in.
Prints one JSON line with steps/s and the final training bits/dim.
"""
import argparse, json, math, struct, time
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--images", required=True)
p.add_argument("--steps", type=int, default=200)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--hidden", type=int, default=32)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--channels-last", action="store_true")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
raw = open(a.images, "rb").read()
n, rows, cols = struct.unpack(">III", raw[4:16])
x_all = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(n, 1, rows, cols).float()
ALPHA, BOUND = 0.05, 3.0
LAYOUT = torch.channels_last if a.channels_last else torch.contiguous_format

class Net(torch.nn.Module):
    def __init__(self, cin, hidden, cout):
        super().__init__()
        self.a = torch.nn.Conv2d(cin, hidden, 3, padding=1)
        self.b = torch.nn.Conv2d(hidden, hidden, 1)
        self.c = torch.nn.Conv2d(hidden, cout, 3, padding=1)
        torch.nn.init.zeros_(self.c.weight); torch.nn.init.zeros_(self.c.bias)
        self.to(memory_format=LAYOUT)
    def forward(self, x):
        x = x.contiguous(memory_format=LAYOUT)
        return self.c(F.relu(self.b(F.relu(self.a(x)))))

def checker(c, h, w, parity):
    m = ((torch.arange(h)[:, None] + torch.arange(w)[None, :] + parity) % 2 == 0).float()
    return m.expand(c, h, w).clone()

def channel(c, h, w, parity):
    m = (torch.arange(c) < c // 2).float()
    m = m if parity == 0 else 1 - m
    return m[:, None, None].expand(c, h, w).clone()

class Coupling(torch.nn.Module):
    def __init__(self, mask, hidden):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = Net(mask.shape[0], hidden, 2 * mask.shape[0])
    def inverse(self, y):  # data -> base: x = (y - t) exp(-s) on the free part
        c = self.mask.shape[0]
        out = self.net(y * self.mask)
        free = 1 - self.mask
        t = out[:, :c] * free
        s = torch.tanh(out[:, c:] / BOUND) * BOUND * free
        return (y - t) * torch.exp(-s), -s.flatten(1).sum(1)

def squeeze(x):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)

H = a.hidden
l1a = torch.nn.ModuleList([Coupling(checker(1, 28, 28, k % 2), H) for k in range(3)])
l1b = torch.nn.ModuleList([Coupling(channel(4, 14, 14, (k + 3) % 2), H) for k in range(3)])
split = Net(2, H, 4)
l2 = torch.nn.ModuleList([Coupling(checker(2, 14, 14, k % 2), H) for k in range(4)])
top_shift = torch.nn.Parameter(torch.zeros(2)); top_log = torch.nn.Parameter(torch.zeros(2))
params = [*l1a.parameters(), *l1b.parameters(), *split.parameters(), *l2.parameters(), top_shift, top_log]
opt = torch.optim.Adam(params, lr=1e-3)
LN2PI = math.log(2 * math.pi)

def nll(xint):
    y = (xint + torch.rand_like(xint)) / 256
    s = ALPHA + (1 - 2 * ALPHA) * y
    z = torch.log(s) - torch.log(1 - s)
    ld = (math.log(1 - 2 * ALPHA) - math.log(256) - torch.log(s) - torch.log(1 - s)).flatten(1).sum(1)
    h = z
    for c in l1a:
        h, l = c.inverse(h); ld = ld + l
    h = squeeze(h)
    for c in l1b:
        h, l = c.inverse(h); ld = ld + l
    zf, keep = h[:, :2], h[:, 2:]
    out = split(keep)
    ls = torch.tanh(out[:, 2:] / BOUND) * BOUND
    eps = (zf - out[:, :2]) * torch.exp(-ls); ld = ld - ls.flatten(1).sum(1)
    h = keep
    for c in l2:
        h, l = c.inverse(h); ld = ld + l
    u = (h - top_shift[None, :, None, None]) * torch.exp(-top_log)[None, :, None, None]
    ld = ld - 14 * 14 * top_log.sum()
    base = -0.5 * (eps.flatten(1) ** 2).sum(1) - 0.5 * (u.flatten(1) ** 2).sum(1) - 0.5 * 784 * LN2PI
    return -(base + ld)

t0 = time.perf_counter()
for step in range(a.steps):
    idx = torch.randint(n, (a.batch,))
    loss = nll(x_all[idx]).mean()
    opt.zero_grad(); loss.backward(); opt.step()
secs = time.perf_counter() - t0
print(json.dumps({"steps_per_sec": a.steps / secs, "bits_per_dim": loss.item() / (784 * math.log(2))}))
