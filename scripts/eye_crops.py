"""The eyes of trained renderers beside the target's: for 8 test pairs (every 26th), the input, then a crop around the
target's eye masks of the target and of each checkpoint's redirection (the input's gaze given, as in the protocol).
Run in the folder of a finished `make repro` (data/, runs/).

python scripts/eye_crops.py OUT.png CHECKPOINT [CHECKPOINT ...]"""
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from ditgaze.evaluate import load_split_pairs, target_labels
from ditgaze.redirector import load_model, predictor

if len(sys.argv) < 3: sys.exit(__doc__)
out, checkpoints = sys.argv[1], sys.argv[2:]
torch.set_num_threads(1)
sp = load_split_pairs("data/synthetic", "test")
rows = sp.pairs[::26][:8]
inp, tgt = sp.items(rows[:, 0]), sp.items(rows[:, 1])
with torch.no_grad(): preds = [predictor(load_model(c))(inp, target_labels(tgt)) for c in checkpoints]   # as the protocol redirects
titles = ["input", "target"] + checkpoints
fig, ax = plt.subplots(len(rows), len(titles), figsize=(3 * len(titles), 1.6 * len(rows)), squeeze=False)
for i in range(len(rows)):
    eyes = ((tgt["left_eye_mask"][i] + tgt["right_eye_mask"][i]) > 0).reshape(tgt["image"].shape[-2:]).numpy()
    ys, xs = np.nonzero(eyes)
    y0, y1, x0, x1 = max(ys.min() - 6, 0), ys.max() + 7, max(xs.min() - 6, 0), xs.max() + 7
    for j, im in enumerate([inp["image"][i], tgt["image"][i]] + [p[i] for p in preds]):
        a = ax[i, j]; a.axis("off")
        a.imshow(im.permute(1, 2, 0).clamp(0, 1).numpy()[(slice(None),) * 2 if j == 0 else (slice(y0, y1), slice(x0, x1))], interpolation="nearest")
        if i == 0: a.set_title(titles[j], fontsize=8)
plt.tight_layout(); plt.savefig(out, dpi=60)
print(f"[eye_crops] {out}")
