"""Test pairs drawn by trained runs at several sampling step counts, side by side: how a DiT-Gaze model's images change
with the sampler. Run in the folder of a finished `make repro` (data/, runs/).

python scripts/steps_figure.py OUT.png RUN [RUN ...] [--steps 1,2,4,8] [--pairs 0,20,40,60,80,100]
  e.g. ditgaze ablations/full   (a run is runs/<RUN>/last.pt; a renderer that does not sample gets one column)"""
import argparse

import numpy as np
import torch

from ditgaze.evaluate import load_split_pairs
from ditgaze.plots import pairs_figure
from ditgaze.redirector import load_model, predictor

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("out"); ap.add_argument("runs", nargs="+")
ap.add_argument("--steps", default="1,2,4,8"); ap.add_argument("--pairs", default="0,20,40,60,80,100"); ap.add_argument("--split", default="test")
args = ap.parse_args()
torch.set_num_threads(1)
sp = load_split_pairs("data/synthetic", args.split)
idx = np.array([int(i) for i in args.pairs.split(",")])
inp, tgt = sp.items(sp.pairs[idx, 0]), sp.items(sp.pairs[idx, 1])
cols = {"source": inp["image"], "target": tgt["image"]}
for run in args.runs:
    model = load_model(f"runs/{run}/last.pt")
    counts = [int(s) for s in args.steps.split(",")] if getattr(model.renderer, "steps", None) is not None else [None]
    for n in counts:
        with torch.no_grad(): cols[run if n is None else f"{run} {n}"] = predictor(model, n)(inp, tgt).clamp(0, 1)
print(pairs_figure(cols, args.out, row_labels=[f"pair {i}" for i in idx]))
