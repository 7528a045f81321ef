"""The zuko side of bench/flows_vs_zuko.sh: MAF or RealNVP (5 transforms, hidden 128-128, zuko's
defaults otherwise) trained by maximum likelihood on a standardized CSV table with Adam (lr 1e-3),
then timed drawing samples. Prints one JSON line: training steps/s, seconds per 10,000 samples,
final test NLL.
"""
import argparse, csv, json, time
import torch
import zuko

p = argparse.ArgumentParser()
p.add_argument("--csv", required=True)
p.add_argument("--flow", choices=["maf", "realnvp"], required=True)
p.add_argument("--steps", type=int, default=1000)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--samples", type=int, default=10000)
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
Flow = zuko.flows.MAF if a.flow == "maf" else zuko.flows.RealNVP
flow = Flow(D, transforms=5, hidden_features=(128, 128))
opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
t0 = time.perf_counter()
for step in range(a.steps):
    idx = torch.randint(len(train), (a.batch,))
    loss = -flow().log_prob(train[idx]).mean()
    opt.zero_grad(); loss.backward(); opt.step()
train_secs = time.perf_counter() - t0
with torch.no_grad():
    nll = -flow().log_prob(test).mean().item()
    t0 = time.perf_counter()
    flow().sample((a.samples,))
    sample_secs = time.perf_counter() - t0
print(json.dumps({"steps_per_sec": a.steps / train_secs, "sample_seconds": sample_secs, "test_nll": nll}))
