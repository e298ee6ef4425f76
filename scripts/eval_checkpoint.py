"""Measure a trained renderer checkpoint on every other test pair (the half that scripts/track_run.py uses), with the
gaze-following slopes, in the folder of a finished `make repro` (data/, runs/estimators/).

python scripts/eval_checkpoint.py CHECKPOINT [SOURCE_GAZE]
  SOURCE_GAZE 1 (default): the input's gaze label reaches the model (the warp carries the eyes); 0: it does not.
Prints one JSON line: the protocol's mean gaze and head errors, SSIM, PSNR, ID, colour differences, follow slopes."""
import json, sys

import torch

from ditgaze.evaluate import EvaluateConfig, Predictor, evaluate_split, load_eval_nets, load_split_pairs, read_truth
from ditgaze.redirector import load_model, redirect

if len(sys.argv) not in (2, 3): sys.exit(__doc__)
ck, sg = sys.argv[1], len(sys.argv) < 3 or sys.argv[2] == "1"
torch.set_num_threads(1)
cfg = EvaluateConfig(batch_size=20)
nets = load_eval_nets(cfg)
sp = load_split_pairs(cfg.dataset, "test"); sp.pairs, sp.rows = sp.pairs[::2], sp.rows[::2]
truth = read_truth(sp, nets, cfg)
model = load_model(ck)

def predict(inp: dict, tgt: dict) -> torch.Tensor:
    return redirect(model, inp["image"], tgt["gaze"], camera={"w2c": tgt["w2c"], "K": tgt["K"]},
                    source_camera={"w2c": inp["w2c"], "K": inp["K"]}, source_gaze=inp["gaze"] if sg else None)

s = evaluate_split(Predictor("checkpoint", predict), sp, truth, nets, cfg)["summary"]
print(json.dumps({"checkpoint": ck, "source_gaze": sg,
                  **{k: round(s[k]["mean"], 3) for k in ("gaze_error", "head_error", "ssim", "psnr", "identity", "color_face", "color_head")},
                  **{k: round(s[k]["value"], 3) for k in ("follow_yaw", "follow_pitch")}}))
