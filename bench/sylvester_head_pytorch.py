# The T-SNF head and step in plain PyTorch on one thread (the floor for bench/sylvester_speed.sh):
# the 300 -> K(M^2 + 3M) linear head forward and backward, a T-SNF-like step (head, K = 4 layers,
# backward) and an Adam update of the head. Usage: python bench/sylvester_head_pytorch.py
import torch, time
torch.set_num_threads(1)
B,F,D,K=100,300,64,4
h=torch.randn(B,F,requires_grad=True)
W=torch.nn.Linear(F,K*(D*D+3*D))
def t(f,n=20):
    f(); t0=time.time()
    for _ in range(n): f()
    return (time.time()-t0)/n*1000
def head():
    out=W(h); out.sum().backward()
print("head fwd+bwd ms", t(head))
def flow():
    out=W(h).view(B,K,-1)
    z=torch.randn(B,D,requires_grad=True)
    ld=0
    for k in range(K):
        o=out[:,k]
        full=o[:,:D*D].view(B,D,D)
        d1=o[:,D*D:D*D+D].tanh(); d2=o[:,D*D+D:D*D+2*D].tanh(); b=o[:,D*D+2*D:]
        r1=full.triu(1)+torch.diag_embed(d1); r2=full.transpose(1,2).triu(1)+torch.diag_embed(d2)
        a=torch.bmm(z.unsqueeze(1), r2.transpose(1,2)).squeeze(1)+b
        hh=a.tanh()
        z=z+torch.bmm(hh.unsqueeze(1), r1.transpose(1,2)).squeeze(1)
        ld=ld+torch.log((1+(1-hh**2)*d1*d2).abs()).sum(1)
    (z.sum()+ld.sum()).backward()
print("t-snf-like fwd+bwd ms", t(flow))
p=list(W.parameters())
opt=torch.optim.Adam(p)
def step():
    opt.step()
print("adam step on head ms", t(step))
