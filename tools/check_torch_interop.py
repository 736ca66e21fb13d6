"""check_torch_interop.py — does a cnnlab checkpoint load in PyTorch with SPEC §4's names and
layout, and give the same answers? A development check (the project never needs PyTorch):

    ./cnnlab tools/export_logits.lua runs/task1/model.safetensors runs/task0/hard.safetensors /tmp/logits.safetensors
    /usr/bin/python3 tools/check_torch_interop.py runs/task1/model.safetensors runs/task0/hard.safetensors /tmp/logits.safetensors

The safetensors files are read with nothing but the format's definition (8-byte little-endian
header length, JSON header, raw little-endian data), so the check also covers the file layout.

    /usr/bin/python3 tools/check_torch_interop.py --cases [path/to/cnnlab]

runs small cases where a PyTorch name once meant something else in cnnlab (Adam's per-parameter
step count, cross_entropy's per-class weight, how ties share a gradient) through ./cnnlab and
through PyTorch, and prints both side by side.
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

DTYPES = {"F32": np.float32, "U8": np.uint8, "I64": np.int64, "I32": np.int32}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")).reshape(e["shape"]).copy()
    return out


class SeedCNN(nn.Module):  # SPEC §3, with SPEC §4's parameter names
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc = nn.Linear(512, 10)
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        return self.fc(x.flatten(1))


# Each case: a name, a Lua chunk that prints numbers separated by spaces, and a function that
# returns PyTorch's numbers in the same order.
def _torch_adam(kind):
    a = torch.tensor([1.0], requires_grad=True)
    b = torch.tensor([1.0], requires_grad=True)
    opt = getattr(torch.optim, kind)([a, b], lr=0.1)
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        loss = a.sum() if step == 0 else a.sum() + b.sum()
        loss.backward()
        opt.step()
    return [a.item(), b.item()]


def _torch_ce():
    z = (torch.eye(3) * 2).requires_grad_()
    loss = torch.nn.functional.cross_entropy(z, torch.tensor([0, 0, 2]), weight=torch.tensor([1.0, 2, 3]))
    loss.backward()
    return [loss.item()] + z.grad.flatten().tolist()


def _torch_ties():
    p = torch.tensor([1.0, 2, 3], requires_grad=True)
    q = torch.tensor([1.0, 5, 3], requires_grad=True)
    torch.maximum(p, q).sum().backward()
    t = torch.tensor([3.0, 1, 3, 3], requires_grad=True)
    t.max().backward()
    u = torch.tensor([0.0, 1, 0], requires_grad=True)
    u.min().backward()
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    torch.nn.functional.max_pool2d(x, 2, 2).sum().backward()
    return p.grad.tolist() + q.grad.tolist() + t.grad.tolist() + u.grad.tolist() + x.grad.flatten().tolist()


_LUA_ADAM = """
local a = lab.tensor({1.0}, {requires_grad = true})
local b = lab.tensor({1.0}, {requires_grad = true})
local opt = lab.optim.%s({a, b}, {lr = 0.1})
for step = 1, 3 do
  opt:zero_grad()
  local loss = a:sum()
  if step > 1 then loss = loss + b:sum() end
  loss:backward()
  opt:step()
end
out({a:item(), b:item()})
"""

CASES = [
    ("Adam, b without gradient on step 1: a, b after 3 steps", _LUA_ADAM % "Adam", lambda: _torch_adam("Adam")),
    ("AdamW, same", _LUA_ADAM % "AdamW", lambda: _torch_adam("AdamW")),
    ("cross_entropy(2*eye(3), {0,0,2}, weight {1,2,3}): loss, dlogits", """
local z = lab.tensor({{2, 0, 0}, {0, 2, 0}, {0, 0, 2}}, {requires_grad = true})
local loss = lab.cross_entropy(z, lab.tensor({0, 0, 2}, {dtype = "int64"}), {weight = lab.tensor({1, 2, 3})})
loss:backward()
local v = {loss:item()}
for _, g in ipairs(z.grad:reshape(-1):totable()) do v[#v + 1] = g end
out(v)
""", _torch_ce),
    ("ties: maximum(p,q) dp dq | max() | min() | max_pool2d on ones", """
local p = lab.tensor({1, 2, 3}, {requires_grad = true})
local q = lab.tensor({1, 5, 3}, {requires_grad = true})
p:maximum(q):sum():backward()
local t = lab.tensor({3, 1, 3, 3}, {requires_grad = true})
t:max():backward()
local u = lab.tensor({0, 1, 0}, {requires_grad = true})
u:min():backward()
local x = lab.ones(1, 1, 2, 2):requires_grad_()
lab.max_pool2d(x, 2, 2):sum():backward()
local v = {}
for _, g in ipairs({p.grad, q.grad, t.grad, u.grad, x.grad}) do
  for _, e in ipairs(g:reshape(-1):totable()) do v[#v + 1] = e end
end
out(v)
""", _torch_ties),
]

_LUA_PRELUDE = """local lab = require "cnnlab"
local function out(v)
  local s = {}
  for i, e in ipairs(v) do s[i] = ("%.9g"):format(e) end
  print(table.concat(s, " "))
end
"""


def run_cases(exe):
    worst = 0.0
    for name, lua, torch_fn in CASES:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(_LUA_PRELUDE + lua)
            path = f.name
        try:
            res = subprocess.run([exe, path], capture_output=True, text=True, check=True)
        finally:
            os.unlink(path)
        ours = [float(v) for v in res.stdout.split()]
        theirs = torch_fn()
        diff = max(abs(a - b) for a, b in zip(ours, theirs)) if len(ours) == len(theirs) else float("inf")
        worst = max(worst, diff)
        print("%s\n  cnnlab  %s\n  PyTorch %s\n  max |diff| %.3g" % (
            name, " ".join("%.4f" % v for v in ours), " ".join("%.4f" % v for v in theirs), diff))
    ok = worst <= 1e-5
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--cases":
        sys.exit(run_cases(sys.argv[2] if len(sys.argv) > 2 else "./cnnlab"))
    model_path, set_path, logits_path = sys.argv[1:4]
    weights = read_safetensors(model_path)
    net = SeedCNN()
    state = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    net.load_state_dict(state, strict=True)  # raises on a missing, extra or mis-shaped tensor
    print("loaded %d tensors with strict=True: %s" % (len(state), ", ".join(
        "%s %s" % (k, list(v.shape)) for k, v in sorted(state.items()))))
    data = read_safetensors(set_path)
    theirs = read_safetensors(logits_path)["logits"]
    n = theirs.shape[0]
    images = data["images"][:n]
    x = torch.from_numpy(images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.copy())
    with torch.no_grad():
        ours = net.eval()(x).numpy()
    diff = np.abs(ours - theirs).max()
    scale = np.abs(theirs).max()
    agree = (ours.argmax(1) == theirs.argmax(1)).mean() * 100
    print("%d images: max |logit difference| %.3g (largest logit %.3g); predictions agree on %.2f%%"
          % (n, diff, scale, agree))
    ok = diff <= 1e-4 * max(1.0, scale) and agree == 100.0
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
