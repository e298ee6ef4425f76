"""The evaluation net's floors with an eye locator of another length, in the folder of a finished `make repro`.

For each EPOCHS, trains the locator part alone (`train_gaze(..., part="locator")` with `estimators.locator_epochs` =
EPOCHS, the stage's seed and batches; checkpoints in loc_<EPOCHS>/), puts its `locator.*` weights into
runs/estimators/gaze_eval.pt, and prints both floors: the estimator stage's (`gaze_report` on the test images) and the
protocol's (the ground-truth row's gaze->label on the test pairs' targets, as `ditgaze evaluate references` reads it).

    python scripts/locator_epochs.py 10 14 27
"""
import sys

import torch

from ditgaze.estimator_training import EstimatorConfig, gaze_report, load_split, net_spec, train_gaze
from ditgaze.evaluate import EvaluateConfig, load_eval_nets, load_split_pairs, read_truth, target_labels
from ditgaze.geometry import angular_error

torch.set_num_threads(1)
cfg, ecfg = EstimatorConfig(), EvaluateConfig()
train, test = load_split("data/synthetic/train", cfg, progress=False), load_split("data/synthetic/test", cfg, progress=False)
nets = load_eval_nets(ecfg)                                          # the stage's evaluation net; its locator is swapped below
reader = {k: v.clone() for k, v in nets.gaze.state_dict().items()}
sp = load_split_pairs(ecfg.dataset, "test")
labels = torch.cat([target_labels(sp.items(sp.pairs[b, 1]))["gaze"] for b in sp.batches(ecfg.batch_size)]).double()
print("| locator epochs | steps | stage floor ° | protocol floor ° | locator px |\n|---:|---:|---:|---:|---:|")
for epochs in map(int, sys.argv[1:]):
    c = EstimatorConfig(locator_epochs=epochs)
    loc, hist = train_gaze(net_spec(c, "gaze_eval"), c.gaze_eval, train, c, f"loc_{epochs}", progress=False, part="locator")
    ls = loc.state_dict()
    nets.gaze.load_state_dict({k: ls[k] if k.startswith("locator.") else v for k, v in reader.items()})
    stage = gaze_report(nets.gaze, test)
    protocol = angular_error(read_truth(sp, nets, ecfg).readings[:, :2], labels).mean().item()
    print(f"| {epochs} | {hist['steps']} | {stage['gaze_deg_mean']:.2f} | {protocol:.2f} | {stage['eye_locator_px_mean']:.2f} |", flush=True)
