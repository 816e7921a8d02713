#!/usr/bin/python3
"""gpt_torch.py — the GPT of nabla/gpt.h in torch 1.13, for parity and speed comparisons.

    /usr/bin/python3 tools/gpt_torch.py parity DIR [--steps 100 --batch 8 --seed 0 ...]
        writes DIR/weights.safetensors (torch's initial weights under nabla's names, with the
        sizes in the metadata "config": a "nabla." key would claim nabla wrote the file),
        DIR/batches.safetensors (x, y: I32 [steps, B, T])
        and DIR/torch_losses.safetensors (loss: F32 [steps], torch's loss at each step);
        bench_gpt parity DIR trains nabla's model from the same and compares.
    /usr/bin/python3 tools/gpt_torch.py speed [--steps 5 --batch 16 --threads 1 ...]
        prints "@ torch_tokens_per_s X", "@ torch_tokens_per_cpu_s X" and "@ torch_maxrss_kb X"
        for training steps after a warm-up step (bench/gpt.sh).

The model is nn.TransformerEncoderLayer(norm_first=True, activation="gelu", dropout=0,
batch_first=True) blocks under a causal float mask, between token and learned position
Embeddings and a final LayerNorm and bias-free Linear head, with the same children as nabla's
(wte, wpe, drop, h, ln_f, lm_head), so the state_dicts share names and order.  Training is
nanoGPT's recipe as nb_gpt_optim_new builds it: AdamW (betas 0.9, 0.99) with weight decay on the
parameters of 2 or more dims only, LinearLR warm-up then CosineAnnealingLR to lr / 10 in a
SequentialLR, the gradients' norm clipped to 1.

The batches come from a fixed, learnable stream (no seed needed on the nabla side): token
t + 1 = perm[token t] for a random permutation, one token in ten replaced by a random one, so
the loss falls from ln V as the model learns the permutation.  One thread (OpenBLAS's too).
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pt_to_safetensors import save_file  # noqa: E402


class GPT(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.drop = nn.Dropout(0.0)
        self.h = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.config = dict(vocab_size=vocab, context=context, n_layer=layers, n_head=heads,
                           n_embd=width, dim_feedforward=4 * width, sinusoidal=False, tokenizer="char")

    def forward(self, idx):
        t = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t)))
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        for block in self.h:
            x = block(x, src_mask=mask)
        return self.lm_head(self.ln_f(x))


def loss_of(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def optimiser(model, steps, warmup, lr, weight_decay=0.1):
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps - warmup, eta_min=lr / 10)
    if warmup == 0:
        return opt, cosine
    linear = torch.optim.lr_scheduler.LinearLR(opt, 1.0 / warmup, 1.0, warmup)
    return opt, torch.optim.lr_scheduler.SequentialLR(opt, [linear, cosine], [warmup])


def train_step(model, opt, sched, x, y, clip=1.0):
    opt.zero_grad()
    loss = loss_of(model, x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return loss.item()


def batches(steps, batch, context, vocab, seed):
    """x, y int32 [steps, batch, context] of the permutation stream described above."""
    g = torch.Generator().manual_seed(seed + 1000)
    perm = torch.randperm(vocab, generator=g)
    n = steps * batch * (context + 1)
    noise = torch.rand(n, generator=g) < 0.1
    rand = torch.randint(vocab, (n,), generator=g)
    s = torch.empty(n, dtype=torch.long)
    s[0] = 0
    for i in range(1, n):
        s[i] = rand[i] if noise[i] else perm[s[i - 1]]
    w = s.reshape(steps, batch, context + 1)
    return w[:, :, :-1].contiguous(), w[:, :, 1:].contiguous()


def parity(a):
    os.makedirs(a.dir, exist_ok=True)
    torch.manual_seed(a.seed)
    model = GPT(a.vocab, a.context, a.layers, a.heads, a.width)
    meta = {"config": json.dumps(model.config, separators=(",", ":"))}
    save_file(os.path.join(a.dir, "weights.safetensors"),
              {k: v.clone() for k, v in model.state_dict().items()}, meta)
    x, y = batches(a.steps, a.batch, a.context, a.vocab, a.seed)
    save_file(os.path.join(a.dir, "batches.safetensors"),
              {"x": x.to(torch.int32), "y": y.to(torch.int32)},
              {"lr": repr(a.lr), "warmup": str(a.warmup)})
    opt, sched = optimiser(model, a.steps, a.warmup, a.lr)
    losses = [train_step(model, opt, sched, x[i], y[i]) for i in range(a.steps)]
    save_file(os.path.join(a.dir, "torch_losses.safetensors"),
              {"loss": torch.tensor(losses, dtype=torch.float32)}, {})
    print("torch 1.13: %d steps, loss %.4f -> %.4f" % (a.steps, losses[0], losses[-1]))


def speed(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = GPT(a.vocab, a.context, a.layers, a.heads, a.width)
    opt, sched = optimiser(model, a.steps + 1, 0, a.lr)
    x = torch.randint(a.vocab, (a.batch, a.context))
    y = torch.randint(a.vocab, (a.batch, a.context))
    train_step(model, opt, sched, x, y)  # warm-up: allocations, thread pool
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        train_step(model, opt, sched, x, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tokens = a.steps * a.batch * a.context
    print("@ torch_tokens_per_s %.1f" % (tokens / wall))
    print("@ torch_tokens_per_cpu_s %.1f" % (tokens / cpu))
    print("@ torch_maxrss_kb %d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["parity", "speed"])
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--vocab", type=int, default=87)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    parity(a) if a.mode == "parity" else speed(a)


if __name__ == "__main__":
    main()
