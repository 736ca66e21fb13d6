"""check_bn_interop.py — BatchNorm, AvgPool2d and AdaptiveAvgPool2d against PyTorch, and a
BatchNorm network exchanged with PyTorch through safetensors in both directions. A development
check (the project never needs PyTorch):

    /usr/bin/python3 tools/check_bn_interop.py [path/to/cnnlab]

1. ops: random inputs go to ./cnnlab and to PyTorch; forward values, the gradients of
   Σ y·r (r random) for input, weight and bias, and the updated running statistics are
   compared (training and evaluation mode).
2. cnnlab → PyTorch: cnnlab builds conv–BN–ReLU–avg-pool–global-pool–linear–BN1d, runs a few
   training-mode forwards (the running statistics move; nothing is trained), saves
   state_dict() as safetensors; PyTorch loads it with strict=True and compares eval logits.
3. PyTorch → cnnlab: the same network built and stepped in PyTorch, saved, loaded by cnnlab
   (strict), eval logits compared.
4. The shipped bn_cnn model: trained one epoch by Task 1 (generated digits), loaded into a
   PyTorch bn_cnn with strict=True, eval logits of 64 random images compared
   (tools/export_logits.lua); then the PyTorch network, stepped in training mode so its
   weights and running statistics differ, saved under the same metadata and read back by
   cnnlab's --model loader, logits compared again.

The safetensors files are read and written with nothing but the format's definition.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# the safetensors reader (and dtype names) of the other interop check, not a second copy
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_torch_interop import DTYPES, NAMES, read_safetensors  # noqa: E402


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def run_lua(exe, source):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(source)
        path = f.name
    try:
        res = subprocess.run([exe, path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if res.returncode != 0:
        sys.exit("cnnlab failed:\n" + res.stdout + res.stderr)
    return res.stdout


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


# ------------------------------------------------------------------ 1. the ops

OPS_LUA = r"""
local lab = require "cnnlab"
local t = lab.load_safetensors(arg[1] or "%s")
local out = {}
local function grads(prefix, y, r, inputs)
  (y * r):sum():backward()
  for name, x in pairs(inputs) do out[prefix .. ".d" .. name] = x.grad end
  out[prefix .. ".y"] = y:detach()
end
for _, case in ipairs({"bn2d", "bn1d", "bn1d3"}) do
  for _, mode in ipairs({"train", "eval"}) do
    local key = case .. "." .. mode
    local x = t[case .. ".x"]:clone():requires_grad_(true)
    local w = t[case .. ".w"]:clone():requires_grad_(true)
    local b = t[case .. ".b"]:clone():requires_grad_(true)
    local rm, rv = t[case .. ".rm"]:clone(), t[case .. ".rv"]:clone()
    local y = lab.batch_norm(x, rm, rv, w, b, mode == "train", 0.1, 1e-5)
    grads(key, y, t[case .. ".r"], {x = x, w = w, b = b})
    out[key .. ".rm"], out[key .. ".rv"] = rm, rv
  end
end
for i, spec in ipairs({{3, 2, 1}, {2, 2, 0}, {4, 3, 2}}) do
  local x = t["pool.x"]:clone():requires_grad_(true)
  local y = lab.avg_pool2d(x, spec[1], spec[2], spec[3])
  grads("avg" .. i, y, t["avg" .. i .. ".r"], {x = x})
end
for i, spec in ipairs({{1, 1}, {3, 4}, {5, 7}, {4, 3}}) do
  local x = t["pool.x"]:clone():requires_grad_(true)
  local y = lab.adaptive_avg_pool2d(x, spec[1], spec[2])
  grads("ada" .. i, y, t["ada" .. i .. ".r"], {x = x})
end
lab.save_safetensors("%s", out)
"""

AVG = [(3, 2, 1), (2, 2, 0), (4, 3, 2)]
ADA = [(1, 1), (3, 4), (5, 7), (4, 3)]


def check_ops(exe, tmp):
    g = np.random.default_rng(7)
    inp = {}
    shapes = {"bn2d": (8, 5, 6, 7), "bn1d": (16, 6), "bn1d3": (4, 6, 9)}
    for case, shape in shapes.items():
        c = shape[1]
        inp[case + ".x"] = (g.standard_normal(shape) * 2 + 3).astype(np.float32)
        inp[case + ".w"] = g.uniform(0.5, 1.5, c).astype(np.float32)
        inp[case + ".b"] = g.uniform(-1, 1, c).astype(np.float32)
        inp[case + ".rm"] = g.uniform(-0.5, 0.5, c).astype(np.float32)
        inp[case + ".rv"] = g.uniform(0.5, 2, c).astype(np.float32)
        inp[case + ".r"] = g.standard_normal(shape).astype(np.float32)
    x = g.standard_normal((3, 4, 13, 11)).astype(np.float32)
    inp["pool.x"] = x
    xt = torch.from_numpy(x)
    for i, (k, s, p) in enumerate(AVG, 1):
        inp["avg%d.r" % i] = g.standard_normal(tuple(F.avg_pool2d(xt, k, s, p).shape)).astype(np.float32)
    for i, o in enumerate(ADA, 1):
        inp["ada%d.r" % i] = g.standard_normal(tuple(F.adaptive_avg_pool2d(xt, o).shape)).astype(np.float32)
    in_path, out_path = os.path.join(tmp, "ops_in.safetensors"), os.path.join(tmp, "ops_out.safetensors")
    write_safetensors(in_path, inp)
    run_lua(exe, OPS_LUA % (in_path, out_path))
    ours = read_safetensors(out_path)
    worst = {}

    def note(kind, d):
        worst[kind] = max(worst.get(kind, 0.0), d)

    for case in shapes:
        for mode in ("train", "eval"):
            key = case + "." + mode
            x = torch.from_numpy(inp[case + ".x"]).requires_grad_()
            w = torch.from_numpy(inp[case + ".w"]).requires_grad_()
            b = torch.from_numpy(inp[case + ".b"]).requires_grad_()
            rm, rv = torch.from_numpy(inp[case + ".rm"].copy()), torch.from_numpy(inp[case + ".rv"].copy())
            y = F.batch_norm(x, rm, rv, w, b, mode == "train", 0.1, 1e-5)
            (y * torch.from_numpy(inp[case + ".r"])).sum().backward()
            note("batch_norm %s forward" % mode, maxdiff(ours[key + ".y"], y.detach().numpy()))
            note("batch_norm %s d input" % mode, maxdiff(ours[key + ".dx"], x.grad.numpy()))
            note("batch_norm %s d weight" % mode, maxdiff(ours[key + ".dw"], w.grad.numpy()))
            note("batch_norm %s d bias" % mode, maxdiff(ours[key + ".db"], b.grad.numpy()))
            note("batch_norm %s running stats" % mode, max(maxdiff(ours[key + ".rm"], rm.numpy()),
                                                           maxdiff(ours[key + ".rv"], rv.numpy())))
    for i, (k, s, p) in enumerate(AVG, 1):
        x = torch.from_numpy(inp["pool.x"]).requires_grad_()
        y = F.avg_pool2d(x, k, s, p)
        (y * torch.from_numpy(inp["avg%d.r" % i])).sum().backward()
        note("avg_pool2d forward", maxdiff(ours["avg%d.y" % i], y.detach().numpy()))
        note("avg_pool2d d input", maxdiff(ours["avg%d.dx" % i], x.grad.numpy()))
    for i, o in enumerate(ADA, 1):
        x = torch.from_numpy(inp["pool.x"]).requires_grad_()
        y = F.adaptive_avg_pool2d(x, o)
        (y * torch.from_numpy(inp["ada%d.r" % i])).sum().backward()
        note("adaptive_avg_pool2d forward", maxdiff(ours["ada%d.y" % i], y.detach().numpy()))
        note("adaptive_avg_pool2d d input", maxdiff(ours["ada%d.dx" % i], x.grad.numpy()))
    print("1. ops against PyTorch %s on random inputs (max |difference|):" % torch.__version__)
    for kind, d in worst.items():
        print("   %-36s %.3g" % (kind, d))
    return max(worst.values()) <= 1e-4


# ------------------------------------------------------------------ 2 and 3. a network


class Net(nn.Module):  # the same layers, in the same order, as NET_LUA's
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)
        self.bn2 = nn.BatchNorm1d(5)

    def forward(self, x):
        x = self.gap(self.pool(torch.relu(self.bn1(self.conv1(x)))))
        return self.bn2(self.fc(x.flatten(1)))


NET_LUA = r"""
local lab = require "cnnlab"
local nn = lab.nn
local net = nn.Sequential()
net:add(nn.Conv2d(3, 8, 3, {padding = 1}), "conv1")
net:add(nn.BatchNorm2d(8), "bn1")
net:add(nn.ReLU(), "relu")
net:add(nn.AvgPool2d(2), "pool")
net:add(nn.AdaptiveAvgPool2d(1), "gap")
net:add(nn.Flatten(), "flat")
net:add(nn.Linear(8, 5), "fc")
net:add(nn.BatchNorm1d(5), "bn2")
local mode, model_path, data_path, out_path = "%s", "%s", "%s", "%s"
local data = lab.load_safetensors(data_path)
if mode == "export" then
  lab.no_grad(function()
    for i = 1, 3 do net(data["batch" .. i]) end -- training mode: the running statistics move
  end)
  lab.save_safetensors(model_path, net:state_dict())
else
  net:load_state_dict(lab.load_safetensors(model_path)) -- strict
end
net:eval()
lab.save_safetensors(out_path, {logits = lab.no_grad(function() return net(data.x) end)})
"""


def check_network(exe, tmp):
    g = np.random.default_rng(11)
    data = {"batch%d" % i: (g.standard_normal((6, 3, 10, 10)) + i).astype(np.float32) for i in (1, 2, 3)}
    data["x"] = g.standard_normal((7, 3, 10, 10)).astype(np.float32)
    data_path = os.path.join(tmp, "data.safetensors")
    write_safetensors(data_path, data)
    ok = True

    # cnnlab → PyTorch
    model_path, out_path = os.path.join(tmp, "from_cnnlab.safetensors"), os.path.join(tmp, "logits_a.safetensors")
    run_lua(exe, NET_LUA % ("export", model_path, data_path, out_path))
    saved = read_safetensors(model_path)
    net = Net()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in saved.items()}, strict=True)
    with torch.no_grad():
        theirs = net.eval()(torch.from_numpy(data["x"])).numpy()
    ours = read_safetensors(out_path)["logits"]
    d = maxdiff(ours, theirs)
    nbt = saved["bn1.num_batches_tracked"]
    print("2. cnnlab → PyTorch: %d tensors loaded with strict=True (bn1.num_batches_tracked %s %s = %d, "
          "bn1.running_var[0] %.4f); eval logits max |difference| %.3g"
          % (len(saved), nbt.dtype, list(nbt.shape), int(nbt), float(saved["bn1.running_var"][0]), d))
    ok = ok and d <= 1e-5 and nbt.dtype == np.int64 and nbt.shape == ()

    # PyTorch → cnnlab
    torch.manual_seed(3)
    net = Net().train()
    with torch.no_grad():
        for i in (1, 2, 3):
            net(torch.from_numpy(data["batch%d" % i]))
        for m in (net.bn1, net.bn2):  # weights that are not 1 and 0, so that they matter
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    model_path, out_path = os.path.join(tmp, "from_torch.safetensors"), os.path.join(tmp, "logits_b.safetensors")
    write_safetensors(model_path, {k: v.detach().numpy() for k, v in net.state_dict().items()})
    run_lua(exe, NET_LUA % ("import", model_path, data_path, out_path))
    with torch.no_grad():
        theirs = net.eval()(torch.from_numpy(data["x"])).numpy()
    ours = read_safetensors(out_path)["logits"]
    d = maxdiff(ours, theirs)
    print("3. PyTorch → cnnlab: %d tensors (%s) loaded strictly; eval logits max |difference| %.3g"
          % (len(net.state_dict()), ", ".join(k for k in net.state_dict() if k.startswith("bn1")), d))
    return ok and d <= 1e-5


class BnCnn(nn.Module):  # lua/cnnlab/models/bn_cnn.lua: the seed network, BatchNorm2d after each conv
    def __init__(self):
        super().__init__()
        for k, (cin, cout) in enumerate([(3, 32), (32, 64), (64, 128)], 1):
            setattr(self, "conv%d" % k, nn.Conv2d(cin, cout, 3, padding=1))
            setattr(self, "bn%d" % k, nn.BatchNorm2d(cout))
        self.fc = nn.Linear(128 * 2 * 2, 10)

    def forward(self, x):
        for k in (1, 2, 3):
            x = F.max_pool2d(torch.relu(getattr(self, "bn%d" % k)(getattr(self, "conv%d" % k)(x))), 3, 2)
        return self.fc(x.flatten(1))


def read_metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def check_bn_cnn(exe, tmp):
    run = os.path.join(tmp, "t1")
    res = subprocess.run([exe, "scripts/task1_train.lua", "--data", "generated", "--generated-n", "400",
                          "--arch", "bn_cnn", "--epochs", "1", "--batch", "50", "--threads", "1",
                          "--no-progress", "--out", run], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("Task 1 failed:\n" + res.stdout + res.stderr)
    model_path = os.path.join(run, "model.safetensors")
    images = np.random.default_rng(5).integers(0, 256, (64, 3, 28, 28), dtype=np.uint8)
    set_path, out_path = os.path.join(tmp, "images.safetensors"), os.path.join(tmp, "logits_c.safetensors")
    write_safetensors(set_path, {"images": images})
    x = torch.from_numpy(images.astype(np.float32) / 255)

    def cnnlab_logits(path):
        res = subprocess.run([exe, "tools/export_logits.lua", path, set_path, out_path, "64"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit("export_logits failed:\n" + res.stdout + res.stderr)
        return read_safetensors(out_path)["logits"]

    saved = read_safetensors(model_path)
    net = BnCnn()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in saved.items()}, strict=True)
    with torch.no_grad():
        d1 = maxdiff(cnnlab_logits(model_path), net.eval()(x).numpy())
    print("4. bn_cnn trained by cnnlab (Task 1, 1 epoch; bn3.num_batches_tracked = %d) → PyTorch, "
          "strict: eval logits max |difference| %.3g" % (int(saved["bn3.num_batches_tracked"]), d1))

    torch.manual_seed(4)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        loss = F.cross_entropy(net(x), torch.randint(0, 10, (64,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    back = os.path.join(tmp, "from_torch_bn_cnn.safetensors")
    write_safetensors(back, {k: v.detach().numpy() for k, v in net.state_dict().items()}, read_metadata(model_path))
    with torch.no_grad():
        d2 = maxdiff(cnnlab_logits(back), net.eval()(x).numpy())
    print("   bn_cnn stepped 3 times in PyTorch → cnnlab's --model loader: eval logits max |difference| %.3g" % d2)
    return d1 <= 1e-4 and d2 <= 1e-4


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "./cnnlab"
    with tempfile.TemporaryDirectory() as tmp:
        ok = check_ops(exe, tmp)
        ok = check_network(exe, tmp) and ok
        ok = check_bn_cnn(exe, tmp) and ok
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
