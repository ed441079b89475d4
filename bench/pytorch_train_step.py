"""The model of bench_train_step.cpp in PyTorch (pre-LN GPT-2 blocks, tied embeddings, learned
positions, dense causal attention, AdamW), timing one training step on random tokens.
Run with Debian's python3-torch:  /usr/bin/python3 bench/pytorch_train_step.py --threads 2
On a GPU:  python3 bench/pytorch_train_step.py --device cuda --gpt2-small [--bf16] [--compile]"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        if hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch 1.x: the masked softmax written out
            s = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.h)
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            o = torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v
        x = x + self.proj(o.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class LM(nn.Module):
    def __init__(self, d, layers, heads, seq, vocab):
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, x, y):
        h = self.embed(x) + self.pos.weight[: x.shape[1]]
        for b in self.blocks:
            h = b(h)
        logits = self.ln_f(h) @ self.embed.weight.t()
        return F.cross_entropy(logits.view(-1, self.vocab).float(), y.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpt2-small", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = p.parse_args()
    if a.gpt2_small:
        a.layers, a.heads, a.d_model, a.vocab, a.seq, a.batch = 12, 12, 768, 50304, 1024, 16
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    model = LM(a.d_model, a.layers, a.heads, a.seq, a.vocab).to(dev)
    step_model = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            **({"fused": True} if cuda else {}))
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    times = []
    warmup = 3 if a.compile else 1
    for s in range(a.steps + warmup):
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            loss = step_model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if cuda:
            torch.cuda.synchronize()
        if s == warmup - 1 and cuda:
            torch.cuda.reset_peak_memory_stats()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    n = sum(p.numel() for p in model.parameters())
    where = f"{torch.cuda.get_device_name(dev)}" if cuda else f"{a.threads} threads"
    mode = ("bf16 autocast" if a.bf16 else "f32") + (", compiled" if a.compile else ", eager")
    peak = f", peak {torch.cuda.max_memory_allocated(dev) / 1e6:.0f} MB" if cuda else ""
    print(f"pytorch {torch.__version__} ({where}, {mode}): {n} params: {t * 1e3:.1f} ms/step, "
          f"{a.batch * a.seq / t:.0f} tokens/s{peak}")


if __name__ == "__main__":
    main()
