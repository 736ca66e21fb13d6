"""check_torch_interop.py — does a cnnlab checkpoint load in PyTorch with SPEC §4's names and
layout, and give the same answers? A development check (the project never needs PyTorch):

    ./cnnlab tools/export_logits.lua runs/task1/model.safetensors runs/task0/hard.safetensors /tmp/logits.safetensors
    /usr/bin/python3 tools/check_torch_interop.py runs/task1/model.safetensors runs/task0/hard.safetensors /tmp/logits.safetensors

The safetensors files are read with nothing but the format's definition (8-byte little-endian
header length, JSON header, raw little-endian data), so the check also covers the file layout.
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

DTYPES = {"F32": np.float32, "U8": np.uint8, "I64": np.int64, "I32": np.int32}


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
        out[name] = np.frombuffer(data[lo:hi], dtype=np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")).reshape(e["shape"])
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


def main():
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
