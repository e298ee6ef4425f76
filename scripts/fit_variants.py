"""Test-time fitting variants on the first 60 test pairs, in the folder of a finished `make repro`.

python scripts/fit_variants.py VARIANT STEPS LR RENDERER
  VARIANT   raw (fit to the input as stored) | white (fit to the input whitened outside its head mask, as the targets are)
  RENDERER  1: adapt the codes and the renderer's last layer; 0: the codes only
Prints the protocol's mean gaze and head errors, SSIM, PSNR, ID and face colour difference."""
import sys

import torch

from ditgaze.evaluate import EvaluateConfig, Predictor, evaluate_split, load_eval_nets, load_split_pairs, read_truth, whitened
from ditgaze.redirector import fit, load_model, redirect_fitted

if len(sys.argv) != 5 or sys.argv[1] not in ("raw", "white"): sys.exit(__doc__)
variant, steps, lr, renderer = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
torch.set_num_threads(2)
cfg = EvaluateConfig(splits=["test"], max_pairs=60)
model = load_model("runs/baseline/last.pt")

def fitted(inp: dict, tgt: dict) -> torch.Tensor:
    src = {"w2c": inp["w2c"], "K": inp["K"]}
    with torch.enable_grad(): r = fit(model, whitened(inp) if variant == "white" else inp["image"], inp["gaze"], src, steps, lr, renderer)
    return redirect_fitted(model, r, inp["image"], tgt["gaze"], {"w2c": tgt["w2c"], "K": tgt["K"]}, src)

nets = load_eval_nets(cfg)
sp = load_split_pairs(cfg.dataset, "test", cfg.max_pairs)
s = evaluate_split(Predictor("fit", fitted, "reference"), sp, read_truth(sp, nets, cfg), nets, cfg)["summary"]
print(variant, steps, lr, renderer, {k: round(s[k]["mean"], 3) for k in ("gaze_error", "head_error", "ssim", "psnr", "identity", "color_face")})
