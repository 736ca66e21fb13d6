"""lff_protocol_torch.py — the lff_colored_mnist benchmark's Vanilla (erm) row trained in
PyTorch on the very digits cnnlab trains on. A development check (the project never needs
PyTorch): when cnnlab and this script land at the same unbiased accuracy, a gap to the
paper's figure lies in the protocol or the data, not in cnnlab's arithmetic.

    ./cnnlab scripts/task0_data.lua --dataset lff_colored_mnist --dataset-opt conflicting=0.01 \\
        --seed 1 --export-train --out /tmp/lff1
    /usr/bin/python3 tools/lff_protocol_torch.py /tmp/lff1 [--epochs 100] [--seed 1] [--threads 2]

The protocol is the table file's (lua/cnnlab/benchmarks/lff_colored_mnist.lua): inputs
byte / 255 flattened (2352), MLP 2352–100–100–100–10 with ReLU and PyTorch's default
initialisation, Adam lr 1e-3, batch 256, shuffled every epoch, cross-entropy; evaluation on the
exported evaluation split (hard.safetensors). It prints the same measures as the benchmark:
unbiased = mean over the (digit, colour) cells of the accuracy in each cell, conflicting = the
same over the cells with colour ≠ digit, and the wall time.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", help="Task 0's export of lff_colored_mnist (train/hard.safetensors)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x, y, _ = load(args.folder, "train")
    hx, hy, hb = load(args.folder, "hard")
    net = nn.Sequential(nn.Linear(x.shape[1], 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                        nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], 256):
            idx = order[i:i + 256]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch == args.epochs or epoch % 10 == 0:
            with torch.no_grad():
                unbiased, conflicting = cell_accuracies(net(hx).argmax(1), hy, hb)
            print(f"epoch {epoch}: loss {loss.item():.4f}  unbiased {unbiased:.2f}%  "
                  f"conflicting {conflicting:.2f}%  ({time.time() - start:.0f} s)", flush=True)
    print(f"PyTorch {torch.__version__}, {args.threads} threads, seed {args.seed}: "
          f"unbiased {unbiased:.2f}%, conflicting {conflicting:.2f}% after {args.epochs} epochs "
          f"in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
