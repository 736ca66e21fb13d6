"""lff_protocol_torch.py — the lff_colored_mnist benchmark's Vanilla (erm) and LfF rows trained
in PyTorch on the very digits cnnlab trains on. A development check (the project never needs
PyTorch): when cnnlab and this script land at the same unbiased accuracy, a gap to the
paper's figure lies in the protocol or the data, not in cnnlab's arithmetic.

    ./cnnlab scripts/task0_data.lua --dataset lff_colored_mnist --dataset-opt conflicting=0.01 \\
        --seed 1 --export-train --out /tmp/lff1
    /usr/bin/python3 tools/lff_protocol_torch.py /tmp/lff1 [--method erm|lff] [--epochs 100] \\
        [--seed 1] [--threads 2]

The protocol is the table file's (lua/cnnlab/benchmarks/lff_colored_mnist.lua): inputs
byte / 255 flattened (2352), MLP 2352–100–100–100–10 with ReLU and PyTorch's default
initialisation, Adam lr 1e-3, batch 256, shuffled every epoch, cross-entropy; evaluation on the
exported evaluation split (hard.safetensors). It prints the same measures as the benchmark:
unbiased = mean over the (digit, colour) cells of the accuracy in each cell, conflicting = the
same over the cells with colour ≠ digit, and the wall time.

--method lff trains LfF as the authors describe it (and as lua/cnnlab/debias/lff.lua does): a
second MLP B trained with generalized cross-entropy (q = 0.7, as q · p_y^q · CE with p_y^q held
constant), an exponential moving average (α = 0.7) of each training sample's cross-entropy under
B and under the evaluated model D, each divided by its class's largest average, the weight
W = b / (b + d + 1e-8) on D's cross-entropy, and the loss mean(GCE_B) + mean(W · CE_D), both
models on Adam lr 1e-3.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="scatter_reduce")  # beta in 1.13; used as documented
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_torch_interop import read_safetensors  # noqa: E402


def load(folder, split):
    t = read_safetensors(os.path.join(folder, split + ".safetensors"))
    bias = t.get("bias", t.get("colors"))
    x = torch.from_numpy(t["images"].astype(np.float32) / 255.0).flatten(1)
    return x, torch.from_numpy(t["labels"]), torch.from_numpy(bias.astype(np.int64))


def cell_accuracies(pred, labels, bias, classes=10):
    cells, conflicting = [], []
    for y in range(classes):
        for b in range(classes):
            mask = (labels == y) & (bias == b)
            if mask.any():
                acc = (pred[mask] == y).float().mean().item()
                cells.append(acc)
                if b != y:
                    conflicting.append(acc)
    return 100 * float(np.mean(cells)), 100 * float(np.mean(conflicting))


def mlp(inputs):
    return nn.Sequential(nn.Linear(inputs, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                         nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))


class LossAverage:
    """Per-sample moving average of a loss, with the class-wise maximum used to normalise it."""

    def __init__(self, labels, alpha):
        self.labels, self.alpha = labels, alpha
        self.value = torch.zeros(len(labels))
        self.seen = torch.zeros(len(labels))

    def update(self, idx, loss):
        keep = self.alpha * self.seen[idx]
        self.value[idx] = self.alpha * self.value[idx] + (1 - keep) * loss  # unseen values are 0
        self.seen[idx] = 1

    def class_max(self, classes=10):
        return torch.zeros(classes).scatter_reduce(0, self.labels, self.value, "amax")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", help="Task 0's export of lff_colored_mnist (train/hard.safetensors)")
    ap.add_argument("--method", choices=["erm", "lff"], default="erm")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x, y, _ = load(args.folder, "train")
    hx, hy, hb = load(args.folder, "hard")
    net = mlp(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if args.method == "lff":
        biased = mlp(x.shape[1])
        opt_b = torch.optim.Adam(biased.parameters(), lr=1e-3)
        avg_b, avg_d = LossAverage(y, 0.7), LossAverage(y, 0.7)
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], 256):
            idx = order[i:i + 256]
            logits = net(x[idx])
            if args.method == "erm":
                loss = F.cross_entropy(logits, y[idx])
            else:
                logits_b = biased(x[idx])
                ce_b = F.cross_entropy(logits_b, y[idx], reduction="none")
                ce_d = F.cross_entropy(logits, y[idx], reduction="none")
                avg_b.update(idx, ce_b.detach())
                avg_d.update(idx, ce_d.detach())
                b = avg_b.value[idx] / avg_b.class_max()[y[idx]].clamp_min(1e-38)
                d = avg_d.value[idx] / avg_d.class_max()[y[idx]].clamp_min(1e-38)
                weight = b / (b + d + 1e-8)
                p_y = F.softmax(logits_b.detach(), 1).gather(1, y[idx].unsqueeze(1)).squeeze(1)
                loss = (ce_b * p_y.pow(0.7) * 0.7).mean() + (ce_d * weight).mean()
                opt_b.zero_grad()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if args.method == "lff":
                opt_b.step()
        if epoch == args.epochs or epoch % 10 == 0:
            with torch.no_grad():
                unbiased, conflicting = cell_accuracies(net(hx).argmax(1), hy, hb)
            print(f"epoch {epoch}: loss {loss.item():.4f}  unbiased {unbiased:.2f}%  "
                  f"conflicting {conflicting:.2f}%  ({time.time() - start:.0f} s)", flush=True)
    print(f"PyTorch {torch.__version__}, {args.method}, {args.threads} threads, seed {args.seed}: "
          f"unbiased {unbiased:.2f}%, conflicting {conflicting:.2f}% after {args.epochs} epochs "
          f"in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
