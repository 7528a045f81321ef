"""The flowlab MAF benchmark's twin in plain PyTorch: 5 MAF layers with MADE conditioners (hidden
64-64, degrees as in flowlab: inputs by order, hidden units cycling 1..D−1, zero-initialized output
layer), orders alternating 1..D / D..1, standard normal base, trained by maximum likelihood with
Adam on the same standardized table. Prints one JSON line with steps/s and the final test NLL.
"""
import argparse, csv, json, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--csv", required=True)
p.add_argument("--steps", type=int, default=3000)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--layers", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

rows = list(csv.reader(open(a.csv)))[1:]
x = torch.tensor([[float(v) for v in r] for r in rows])
n_test = len(x) // 10
train, test = x[n_test:], x[:n_test]
mean, std = train.mean(0), train.std(0)
train, test = (train - mean) / std, (test - mean) / std
D = x.shape[1]

class MADE(torch.nn.Module):
    def __init__(self, order, hidden):
        super().__init__()
        degrees = [torch.tensor(order)] + [torch.arange(h) % max(D - 1, 1) + 1 for h in hidden]
        out_deg = torch.tensor(order).repeat(2)
        sizes = [D] + hidden + [2 * D]
        self.layers = torch.nn.ModuleList()
        self.masks = []
        for i in range(len(sizes) - 1):
            lin = torch.nn.Linear(sizes[i], sizes[i + 1])
            d_in = degrees[i]
            if i + 1 < len(sizes) - 1:
                mask = (degrees[i + 1][:, None] >= d_in[None, :]).float()
            else:
                mask = (out_deg[:, None] > d_in[None, :]).float()
                torch.nn.init.zeros_(lin.weight); torch.nn.init.zeros_(lin.bias)
            self.layers.append(lin)
            self.masks.append(mask)
    def forward(self, h):
        for i, (lin, m) in enumerate(zip(self.layers, self.masks)):
            h = torch.nn.functional.linear(h, lin.weight * m, lin.bias)
            if i + 1 < len(self.layers):
                h = torch.relu(h)
        return h.reshape(-1, 2, D)

orders = [list(range(1, D + 1)) if k % 2 == 0 else list(range(D, 0, -1)) for k in range(a.layers)]
mades = torch.nn.ModuleList([MADE(o, [64, 64]) for o in orders])

def log_prob(xb):
    ld = torch.zeros(len(xb))
    for made in reversed(mades):  # density direction: last layer first
        out = made(xb)
        shift, log_scale = out[:, 0], out[:, 1]
        xb = (xb - shift) * torch.exp(-log_scale)
        ld = ld - log_scale.sum(1)
    return -0.5 * (xb ** 2).sum(1) - 0.5 * D * torch.log(torch.tensor(2 * torch.pi)) + ld

opt = torch.optim.Adam(mades.parameters(), lr=1e-3)
t0 = time.perf_counter()
for step in range(a.steps):
    idx = torch.randint(len(train), (a.batch,))
    loss = -log_prob(train[idx]).mean()
    opt.zero_grad(); loss.backward(); opt.step()
secs = time.perf_counter() - t0
with torch.no_grad():
    nll = -log_prob(test).mean().item()
print(json.dumps({"steps_per_sec": a.steps / secs, "test_nll": nll}))
