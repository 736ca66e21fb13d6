"""check_adversarial_torch.py — Task 5's saved attacks re-checked by PyTorch. A development
check (the project never needs PyTorch): PyTorch loads the attacked model's weights and the
saved images, and confirms every success Task 5 reports.

    /usr/bin/python3 tools/check_adversarial_torch.py runs/task1/model.safetensors \\
        runs/task5/adversarial.safetensors
    /usr/bin/python3 tools/check_adversarial_torch.py runs/task4/grey_invariant/model.safetensors \\
        runs/task5/adversarial_grey_invariant.safetensors

For the float32 images as saved and for the same images rounded to bytes (what a PNG would
hold), it counts the samples PyTorch answers with the target at the file's confidence; it
checks that every adversarial image lies in [0, 1] and within ε of its original (the file's
`eps` metadata), and that every sample the file marks as a success is one for PyTorch. The
per-sample minimal ε (`min_eps`, `min_eps_adversarial`) is checked the same way, each image
within its own ε. Exit status 1 when a claimed success is not confirmed.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_torch_interop import SeedCNN, read_safetensors  # noqa: E402


def metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def answers(net, images, targets, confidence):
    with torch.no_grad():
        p = torch.softmax(net(torch.from_numpy(images)), dim=1)
    t = torch.from_numpy(targets)
    return ((p.argmax(1) == t) & (p.gather(1, t[:, None])[:, 0] >= confidence)).numpy()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_path, adv_path = sys.argv[1:]
    net = SeedCNN()
    weights = {k: torch.from_numpy(v) for k, v in read_safetensors(model_path).items()}
    net.load_state_dict(weights, strict=True)
    net.eval()
    t, meta = read_safetensors(adv_path), metadata(adv_path)
    eps, confidence = float(meta["eps"]), float(meta.get("confidence", 0))
    adv, orig, targets = t["adversarial"], t["originals"], t["targets"]
    claimed = t["success"].astype(bool)
    ok = answers(net, adv, targets, confidence)
    ok_bytes = answers(net, np.round(adv * 255).astype(np.float32) / 255, targets, confidence)
    dist = np.abs(adv - orig).reshape(len(adv), -1).max(1)
    print(f"{adv_path}: {len(adv)} samples, ε = {eps}, confidence ≥ {confidence}")
    print(f"  claimed successes {claimed.sum()} ({100 * claimed.mean():.1f}%); PyTorch confirms "
          f"{(ok & claimed).sum()} on the float32 images, {(ok_bytes & claimed).sum()} after "
          f"rounding to bytes; PyTorch finds {(ok & ~claimed).sum()} unclaimed successes")
    print(f"  max |adversarial − original| {dist.max():.6f} (ε {eps}); range "
          f"[{adv.min():.4f}, {adv.max():.4f}]")
    bad = (claimed & ~ok).sum() + (dist > eps + 1e-6).sum() + (adv.min() < 0) + (adv.max() > 1)
    if "min_eps" in t:
        m = len(t["min_eps_adversarial"])
        me, madv = t["min_eps"][:m], t["min_eps_adversarial"]
        finite = np.isfinite(me)
        mok = answers(net, madv[finite], targets[:m][finite], confidence)
        mdist = np.abs(madv[finite] - orig[:m][finite]).reshape(finite.sum(), -1).max(1)
        print(f"  minimal ε: {finite.sum()} of {m} reached; PyTorch confirms {mok.sum()} at their "
              f"own ε (all within it: {bool((mdist <= me[finite] + 1e-6).all())}); median "
              f"{np.median(me[finite]):.4f}")
        bad += (~mok).sum() + (mdist > me[finite] + 1e-6).sum()
    print("OK" if bad == 0 else f"NOT CONFIRMED: {bad} problems")
    sys.exit(0 if bad == 0 else 1)


if __name__ == "__main__":
    main()
