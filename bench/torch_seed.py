"""torch_seed.py — the seed network of SPEC §3 in PyTorch, timed on request, for bench/bench.lua.

bench.lua starts this once (with --serve) and sends it commands on stdin, one a line, so that
PyTorch and cnnlab take turns on the machine in the same run and a ratio compares like with
like even on a busy machine:

    train <threads> <steps>   time <steps> training steps (forward, cross-entropy, backward,
                              Adam) at the batch given by --batch
    infer <threads> <steps>   time <steps> forward passes under no_grad (eval mode)
    quit

Each command answers one line: "<command> <threads> <seconds per step>". The first command at
a new thread count first runs a few untimed steps (thread pools start, allocator warms up).
Only PyTorch's own CPU defaults are used: float32, NCHW, whatever convolution backend the build
picks (oneDNN in Debian's python3-torch).
"""
import argparse
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def seed_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Linear(512, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--serve", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    net = seed_cnn()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 3, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    def train_step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            net(x)

    warmed = set()
    print("ready torch %s" % torch.__version__, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        kind, threads, steps = words[0], int(words[1]), int(words[2])
        torch.set_num_threads(threads)
        step = train_step if kind == "train" else infer_step
        net.train(kind == "train")
        if (kind, threads) not in warmed:
            for _ in range(3):
                step()
            warmed.add((kind, threads))
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        dt = (time.perf_counter() - t0) / steps
        print("%s %d %.9f" % (kind, threads, dt), flush=True)


if __name__ == "__main__":
    main()
