"""Train the evaluation gaze net with one change of its settings and print its floor on the test subjects.

python scripts/floor_epochs.py DATASET NAME EPOCHS CROP_H CROP_W WIDTHS [KEY=VALUE ...]
  WIDTHS comma-separated, e.g. 16,32,64; KEY=VALUE: any other integer field of EstimatorConfig, e.g. locator_size=32.
Writes the net's training folder to runs/floor_<NAME>/ and one JSON line with the steps, seconds and test errors."""
import json, sys, time
from dataclasses import replace
from pathlib import Path

import torch

from ditgaze.estimator_training import EstimatorConfig, gaze_report, load_split, net_spec, train_gaze

if len(sys.argv) < 7: sys.exit(__doc__)
dataset, name, ep, ch, cw = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
widths = [int(w) for w in sys.argv[6].split(",")]
torch.set_num_threads(1)
extra = {k: int(v) for k, v in (kv.split("=", 1) for kv in sys.argv[7:])}
cfg = EstimatorConfig(dataset=dataset, eye_crop_size=[ch, cw], **extra)
cfg = replace(cfg, gaze_eval=replace(cfg.gaze_eval, epochs=ep, widths=widths))
train, test = (load_split(Path(dataset) / s, cfg, False) for s in ("train", "test"))
t0 = time.time()
net, hist = train_gaze(net_spec(cfg, "gaze_eval"), cfg.gaze_eval, train, cfg, Path(f"runs/floor_{name}"), progress=False)
rep = gaze_report(net, test)
print(json.dumps({"name": name, "epochs": ep, "crop": [ch, cw], "widths": widths, **extra, "steps": hist["steps"], "seconds": round(time.time() - t0),
                  **{k: round(v, 3) for k, v in rep.items() if isinstance(v, float)}}))
