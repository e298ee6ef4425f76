"""Measure a trained renderer checkpoint, or a VAE's reconstructions of the targets, on every other test pair (the half
that scripts/track_run.py uses), in the folder of a finished `make repro` (data/, runs/estimators/).

python scripts/eval_checkpoint.py CHECKPOINT [SOURCE_GAZE]
  SOURCE_GAZE 1 (default): the input's gaze label reaches the model (the warp carries the eyes); 0: it does not.
python scripts/eval_checkpoint.py VAE_FOLDER          # e.g. runs/vae: the ceiling of a latent renderer drawing through it
Prints one JSON line: the protocol's mean gaze and head errors, SSIM, PSNR, ID, colour differences, and (checkpoints)
the follow slopes."""
import json, sys
from pathlib import Path

import torch

from ditgaze.evaluate import EvaluateConfig, Predictor, evaluate_split, load_eval_nets, load_split_pairs, read_truth, vae_predictors
from ditgaze.redirector import load_model, redirect

if len(sys.argv) not in (2, 3): sys.exit(__doc__)
what, sg = sys.argv[1], len(sys.argv) < 3 or sys.argv[2] == "1"
vae = Path(what).is_dir()
torch.set_num_threads(1)
cfg = EvaluateConfig(batch_size=20, **({"follow_yaws": [], "follow_pitches": []} if vae else {}))
nets = load_eval_nets(cfg)
sp = load_split_pairs(cfg.dataset, "test"); sp.pairs, sp.rows = sp.pairs[::2], sp.rows[::2]
truth = read_truth(sp, nets, cfg)

if vae: pred = vae_predictors(what)[0]
else:
    model = load_model(what)
    def predict(inp: dict, tgt: dict) -> torch.Tensor:
        return redirect(model, inp["image"], tgt["gaze"], camera={"w2c": tgt["w2c"], "K": tgt["K"]},
                        source_camera={"w2c": inp["w2c"], "K": inp["K"]}, source_gaze=inp["gaze"] if sg else None)
    pred = Predictor("checkpoint", predict)

s = evaluate_split(pred, sp, truth, nets, cfg)["summary"]
print(json.dumps({("vae" if vae else "checkpoint"): what, **({} if vae else {"source_gaze": sg}),
                  **{k: round(s[k]["mean"], 3) for k in ("gaze_error", "head_error", "ssim", "psnr", "identity", "color_face", "color_head")},
                  **({} if vae else {k: round(s[k]["value"], 3) for k in ("follow_yaw", "follow_pitch")})}))
