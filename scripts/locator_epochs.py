"""The evaluation net's floors with one of its two parts of another length, in the folder of a finished `make repro`.

For each EPOCHS, trains one part alone with the stage's seed and batches (`train_gaze(..., part=PART)`; the locator with
`estimators.locator_epochs` = EPOCHS, the reader with `estimators.gaze_eval.epochs` = EPOCHS; checkpoints in
loc_<EPOCHS>/ or rd_<EPOCHS>/), puts its weights beside the other part of runs/estimators/gaze_eval.pt, and prints both
floors: the estimator stage's (`gaze_report` on the test images) and the protocol's (the ground-truth row's
gaze->label on the test pairs' targets, as `ditgaze evaluate references` reads it).

    python scripts/locator_epochs.py 10 14 27              # the locator
    python scripts/locator_epochs.py --reader 27 36 45     # the reader
"""
import sys
from dataclasses import replace

import torch

from ditgaze.estimator_training import EstimatorConfig, gaze_report, load_split, net_spec, train_gaze
from ditgaze.evaluate import EvaluateConfig, load_eval_nets, load_split_pairs, read_truth, target_labels
from ditgaze.geometry import angular_error

args = sys.argv[1:]
part = "reader" if args[:1] == ["--reader"] else "locator"
if part == "reader": args = args[1:]
if not args: sys.exit(__doc__)
torch.set_num_threads(1)
cfg, ecfg = EstimatorConfig(), EvaluateConfig()
train, test = load_split("data/synthetic/train", cfg, progress=False), load_split("data/synthetic/test", cfg, progress=False)
nets = load_eval_nets(ecfg)                                          # the stage's evaluation net; one part is swapped below
stage_net = {k: v.clone() for k, v in nets.gaze.state_dict().items()}
sp = load_split_pairs(ecfg.dataset, "test")
labels = torch.cat([target_labels(sp.items(sp.pairs[b, 1]))["gaze"] for b in sp.batches(ecfg.batch_size)]).double()
print(f"| {part} epochs | steps | stage floor ° | protocol floor ° | locator px |\n|---:|---:|---:|---:|---:|")
for epochs in map(int, args):
    c = replace(cfg, locator_epochs=epochs) if part == "locator" else replace(cfg, gaze_eval=replace(cfg.gaze_eval, epochs=epochs))
    net, hist = train_gaze(net_spec(c, "gaze_eval"), c.gaze_eval, train, c, f"{'loc' if part == 'locator' else 'rd'}_{epochs}", progress=False, part=part)
    new = net.state_dict()
    mine = (lambda k: k.startswith("locator.")) if part == "locator" else (lambda k: not k.startswith("locator."))
    nets.gaze.load_state_dict({k: new[k] if mine(k) else v for k, v in stage_net.items()})
    stage = gaze_report(nets.gaze, test)
    protocol = angular_error(read_truth(sp, nets, ecfg).readings[:, :2], labels).mean().item()
    print(f"| {epochs} | {hist['steps']} | {stage['gaze_deg_mean']:.2f} | {protocol:.2f} | {stage['eye_locator_px_mean']:.2f} |", flush=True)
