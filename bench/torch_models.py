"""torch_models.py — cnnlab's model plug-ins (lua/cnnlab/models/) in PyTorch, timed on request,
for bench/bench.lua.

bench.lua starts this once (with --serve) and sends it commands on stdin, one a line, so that
PyTorch and cnnlab take turns on the machine in the same run and a ratio compares like with
like even on a busy machine:

    train <arch> <batch> <threads> <steps>   time <steps> training steps (forward,
                                             cross-entropy, backward, Adam) of network <arch>
                                             at <batch> images of 3×28×28
    infer <arch> <batch> <threads> <steps>   time <steps> forward passes under no_grad (eval
                                             mode)
    quit

Each command answers one line: "<command> <threads> <seconds per step>". The network and its
batch are built on the first command that names them (the previous one is dropped, so that
only one holds memory), and the first command at a new thread count first runs a few untimed
steps (thread pools start, allocator warms up). Only PyTorch's own CPU defaults are used:
float32, NCHW, whatever convolution backend the build picks (oneDNN in Debian's python3-torch).

Each builder mirrors the Lua file of the same name, layer for layer (sizes, padding, pooling,
BatchNorm with PyTorch's defaults, which are cnnlab's: eps 1e-5, momentum 0.1). Initial values
differ (each framework draws its own); speed does not depend on them.
"""
import argparse
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def seed_cnn():
    """lua/cnnlab/models/seed_cnn.lua: three 3×3 conv blocks (32, 64, 128), max-pool 3/2."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Linear(512, 10))


def bn_cnn():
    """lua/cnnlab/models/bn_cnn.lua: the seed network with BatchNorm2d after each conv."""
    layers, cin = [], 3
    for cout in (32, 64, 128):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                   nn.MaxPool2d(3, 2)]
        cin = cout
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 10))


def lff_mlp(hidden=100):
    """lua/cnnlab/models/lff_mlp.lua: 2352 → 100 → 100 → 100 → 10 with ReLU."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 28 * 28, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 10))


def simple_convnet(kernel=7, widths=(16, 32, 64, 128)):
    """lua/cnnlab/models/simple_convnet.lua: k×k conv (padding k//2) → BN → ReLU blocks on the
    full plane, global average pooling, linear."""
    layers, cin = [], 3
    for cout in widths:
        layers += [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout),
                   nn.ReLU()]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(widths[-1], 10))


MODELS = {"seed_cnn": seed_cnn, "bn_cnn": bn_cnn, "lff_mlp": lff_mlp,
          "simple_convnet": simple_convnet}


class Bench:
    """One network, its Adam and one batch of random images."""

    def __init__(self, arch, batch):
        torch.manual_seed(0)
        self.net = MODELS[arch]()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.x = torch.rand(batch, 3, 28, 28)
        self.y = torch.randint(0, 10, (batch,))

    def train_step(self):
        self.opt.zero_grad()
        loss = F.cross_entropy(self.net(self.x), self.y)
        loss.backward()
        self.opt.step()

    def infer_step(self):
        with torch.no_grad():
            self.net(self.x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true")
    ap.parse_args()
    current, bench, warmed = None, None, set()
    print("ready torch %s" % torch.__version__, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        kind, arch, batch, threads, steps = words[0], words[1], int(words[2]), int(words[3]), int(words[4])
        if arch not in MODELS:
            print("error unknown arch %s" % arch, flush=True)
            continue
        if current != (arch, batch):
            bench = None  # the previous network's memory goes first
            bench = Bench(arch, batch)
            current, warmed = (arch, batch), set()
        torch.set_num_threads(threads)
        step = bench.train_step if kind == "train" else bench.infer_step
        bench.net.train(kind == "train")
        if (kind, threads) not in warmed:
            for _ in range(2):
                step()
            warmed.add((kind, threads))
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        dt = (time.perf_counter() - t0) / steps
        print("%s %d %.9f" % (kind, threads, dt), flush=True)


if __name__ == "__main__":
    main()
