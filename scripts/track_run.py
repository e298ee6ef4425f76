"""Train a renderer run in chunks and measure it on a fixed half of the test pairs after each chunk.

Shows how gaze, head pose, image quality, identity and colour move during training (the colour drift check):
one line per chunk, printed and written as a table.

usage (from a folder with data/, runs/gaussians/ and runs/estimators/, e.g. after `make repro`):
    .venv/bin/python scripts/track_run.py [--params params.yaml] [--chunk 300] RUN OUT.tsv
"""
import argparse, json, time
from pathlib import Path

import numpy as np
import torch

from ditgaze.cli import sections
from ditgaze.config import load_params
from ditgaze.evaluate import EvaluateConfig, Predictor, evaluate_split, load_eval_nets, load_split_pairs, read_truth, target_labels
from ditgaze.losses import luma_bias, region_masks
from ditgaze.redirector import load_model, predictor
from ditgaze.training import run_config, train_run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run"); ap.add_argument("out")
    ap.add_argument("--params", default="params.yaml"); ap.add_argument("--chunk", type=int, default=300)
    a = ap.parse_args()
    torch.set_num_threads(1)
    p = load_params(a.params, sections())
    cfg = run_config(p["train"], p["runs"], a.run, a.params)
    ecfg = EvaluateConfig(dataset=cfg.dataset, batch_size=20, follow_yaws=[], follow_pitches=[])
    nets = load_eval_nets(ecfg)
    sp = load_split_pairs(cfg.dataset, "test")
    sp.pairs, sp.rows = sp.pairs[::2], sp.rows[::2]                 # every other pair: half the split, every subject
    truth = read_truth(sp, nets, ecfg)
    rows, step = [], 0
    while step < cfg.optim.steps:
        t0 = time.time()
        step = train_run(a.run, cfg, "cpu", progress=False, stop_after=a.chunk)["step"]
        pred = Predictor(a.run, predictor(load_model(Path(cfg.runs_dir) / a.run / "last.pt")))
        s = evaluate_split(pred, sp, truth, nets, ecfg)["summary"]
        bias = []                                                    # prediction minus target luma over the face
        for b in sp.batches(20):
            inp, tgt = sp.items(sp.pairs[b, 0]), sp.items(sp.pairs[b, 1])
            with torch.no_grad(): bias.append(float(luma_bias(pred.fn(inp, target_labels(tgt)), tgt["image"], region_masks(tgt)["face"])))
        row = {"step": step, "sec": round(time.time() - t0), "gaze": s["gaze_error"]["mean"], "head": s["head_error"]["mean"],
               "ssim": s["ssim"]["mean"], "psnr": s["psnr"]["mean"], "id": s["identity"]["mean"], "dE_face": s["color_face"]["mean"],
               "dE_head": s["color_head"]["mean"], "luma_bias": float(np.mean(bias))}
        rows.append(row); print(json.dumps(row), flush=True)
        Path(a.out).write_text("\t".join(rows[0]) + "\n" + "".join(
            "\t".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + "\n" for r in rows))


if __name__ == "__main__":
    main()
