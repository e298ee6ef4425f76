"""How far the evaluation net's reading moves when the ground-truth targets lose resolution: each target (whitened as the
protocol's) is average-pooled by a factor and upsampled back (bilinear), and measured as a prediction on every other test pair
(the half that scripts/track_run.py uses). A renderer whose eyes are no sharper than a pooled image cannot read better.
Run in the folder of a finished `make repro` (data/, runs/estimators/).

python scripts/blur_floor.py [FACTOR ...]        (default: 2 4)
Prints one JSON line per factor: gaze and head error (against the reading of the target itself), SSIM, ID."""
import json, sys

import torch
import torch.nn.functional as F

from ditgaze.evaluate import EvaluateConfig, Predictor, evaluate_split, load_eval_nets, load_split_pairs, read_truth, whitened

factors = [int(a) for a in sys.argv[1:]] or [2, 4]
torch.set_num_threads(1)
cfg = EvaluateConfig(batch_size=20, follow_yaws=[], follow_pitches=[])
nets = load_eval_nets(cfg)
sp = load_split_pairs(cfg.dataset, "test"); sp.pairs, sp.rows = sp.pairs[::2], sp.rows[::2]
truth = read_truth(sp, nets, cfg)
pooled = lambda img, f: F.interpolate(F.avg_pool2d(img, f), scale_factor=f, mode="bilinear", align_corners=False).clamp(0, 1)
for f in factors:
    pred = Predictor(f"target_pooled_{f}", lambda inp, tgt, f=f: pooled(whitened(tgt), f), "reference", full_target=True)
    s = evaluate_split(pred, sp, truth, nets, cfg)["summary"]
    print(json.dumps({"factor": f, **{k: round(s[k]["mean"], 2) for k in ("gaze_error", "head_error", "ssim", "identity")}}), flush=True)
