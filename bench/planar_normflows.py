"""The flowlab planar/radial benchmark's twin in normflows: K planar (or radial) layers fitted to U1
by reverse KL.

Same target (normflows' TwoModes(2, 0.2) is U1), same initialization scheme (normflows' Planar),
same base N(0, I), batch, Adam settings and β schedule (β_t = 0.01 + 0.99·min(1, t/anneal)).
Prints one JSON line: steps/s, and F and KL = F + ln Z estimated from 100k samples at the end.
"""
import argparse, json, time
import torch
import normflows as nf

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=10000)
p.add_argument("--layers", type=int, default=16)
p.add_argument("--flow", choices=["planar", "radial"], default="planar")
p.add_argument("--batch", type=int, default=256)
p.add_argument("--anneal", type=int, default=5000)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--log-z", type=float, required=True)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
base = nf.distributions.DiagGaussian(2, trainable=False)
Layer = nf.flows.Planar if a.flow == "planar" else nf.flows.Radial
flows = [Layer((2,)) for _ in range(a.layers)]
target = nf.distributions.TwoModes(2.0, 0.2)
model = nf.NormalizingFlow(q0=base, flows=flows, p=target)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

t0 = time.perf_counter()
for step in range(a.steps):
    beta = 0.01 + 0.99 * min(1.0, step / a.anneal)
    opt.zero_grad()
    loss = model.reverse_kld(a.batch, beta=beta)
    loss.backward()
    opt.step()
secs = time.perf_counter() - t0

with torch.no_grad():
    f = 0.0
    for _ in range(10):
        z, log_q = model.sample(10000)
        f += (log_q - target.log_prob(z)).mean().item() / 10
print(json.dumps({"steps_per_sec": a.steps / secs, "free_energy": f, "kl": f + a.log_z, "threads": a.threads}))
