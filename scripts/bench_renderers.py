"""The cost-quality curve of the renderers on CPU: images per second and the protocol's gaze error, ID and PSNR of each
trained run, a sampling (diffusion) run at several step counts, on the first N test pairs. Run in the folder of a
finished `make repro` (data/, runs/); the run's threads are those of params.yaml's `run` section.

python scripts/bench_renderers.py [--pairs 40] [--batch 20] RUN[:S1,S2,...] ...
  e.g. baseline ditgaze:1,4,8,50
Prints one Markdown table."""
import argparse, time

import torch

from ditgaze.config import load_params
from ditgaze.evaluate import EvaluateConfig, Predictor, evaluate_split, load_eval_nets, load_split_pairs, read_truth
from ditgaze.redirector import load_model, predictor
from ditgaze.runtime import RunConfig, setup_run

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("runs", nargs="+"); ap.add_argument("--pairs", type=int, default=40); ap.add_argument("--batch", type=int, default=20)
args = ap.parse_args()
device = setup_run(load_params("params.yaml", {"run": RunConfig})["run"])
cfg = EvaluateConfig(batch_size=args.batch, max_pairs=args.pairs, follow_yaws=[], follow_pitches=[])
nets = load_eval_nets(cfg, device)
sp = load_split_pairs(cfg.dataset, "test", args.pairs)
truth = read_truth(sp, nets, cfg, device)
print(f"{args.pairs} test pairs, batch {args.batch}, {torch.get_num_threads()} threads\n")
print("| run | sampling steps | images/s | gaze error ° | ID | PSNR |\n|---|---:|---:|---:|---:|---:|")
for spec in args.runs:
    name, _, steps = spec.partition(":")
    model = load_model(f"runs/{name}/last.pt", device)
    for n in [int(s) for s in steps.split(",")] if steps else [None]:
        fn = predictor(model, n)
        seconds = [0.0]
        def timed(inp, tgt):
            t0 = time.perf_counter(); out = fn(inp, tgt); seconds[0] += time.perf_counter() - t0; return out
        s = evaluate_split(Predictor(f"{name}_{n}", timed), sp, truth, nets, cfg, device)["summary"]
        print(f"| {name} | {n if n is not None else '-'} | {args.pairs / seconds[0]:.1f} | {s['gaze_error']['mean']:.2f} | "
              f"{s['identity']['mean']:.1f} | {s['psnr']['mean']:.2f} |", flush=True)
