"""The protocol on a VAE's reconstructions of the test targets (every other test pair), next to the ground truth: what a
latent renderer drawing through this decoder can reach at best. In the folder of a finished `make repro`.

python scripts/vae_floor.py VAE_FOLDER      # e.g. runs/vae
Prints one JSON line per row."""
import json, sys

import torch

from ditgaze.evaluate import EvaluateConfig, evaluate_split, load_eval_nets, load_split_pairs, read_truth, reference_predictors, vae_predictors

if len(sys.argv) != 2: sys.exit(__doc__)
torch.set_num_threads(1)
cfg = EvaluateConfig(batch_size=20, follow_yaws=[], follow_pitches=[])
nets = load_eval_nets(cfg)
sp = load_split_pairs(cfg.dataset, "test"); sp.pairs, sp.rows = sp.pairs[::2], sp.rows[::2]
truth = read_truth(sp, nets, cfg)
for p in vae_predictors(sys.argv[1]) + reference_predictors()[-1:]:
    s = evaluate_split(p, sp, truth, nets, cfg)["summary"]
    print(p.name, json.dumps({k: round(s[k]["mean"], 3) for k in ("gaze_error", "head_error", "ssim", "psnr", "identity", "color_face")}))
