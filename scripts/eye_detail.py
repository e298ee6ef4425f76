"""How much eye detail a latent space or a renderer keeps: PSNR and SSIM on whole images and on eye crops, over the test
pairs' targets. Run in the folder of a finished `make repro` (data/, runs/).

python scripts/eye_detail.py SOURCE [SOURCE ...] [--crop 24] [--pairs 0] [--split test]
  SOURCE: a VAE folder (runs/vae: its reconstruction of each whitened target, a latent renderer's ceiling)
          or a run's checkpoint (runs/ditgaze/last.pt: its redirection of each pair's input to the target's gaze and camera)
  --pairs N: the first N pairs (0: all)
Targets are whitened outside the head mask (as the protocol's); an eye crop is a CROP x CROP square centred on each of the
target's eye masks (every eye the target shows). Prints one Markdown table."""
import argparse
from pathlib import Path

import torch

from ditgaze.evaluate import FitConfig, load_split_pairs, model_predictors, vae_predictors, whitened
from ditgaze.metrics import psnr, ssim

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("sources", nargs="+"); ap.add_argument("--crop", type=int, default=24)
ap.add_argument("--pairs", type=int, default=0); ap.add_argument("--split", default="test")
args = ap.parse_args()
torch.set_num_threads(1)
sp = load_split_pairs("data/synthetic", args.split, args.pairs)
batches = [(sp.items(sp.pairs[b, 0]), sp.items(sp.pairs[b, 1])) for b in sp.batches(50)]
truth = torch.cat([whitened(t) for _, t in batches])                                        # [K,3,H,W]
H, c = truth.shape[-1], args.crop

def eye_boxes(key: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-left corners (y0, x0) [K] of the CROP x CROP squares centred on the targets' `key` eye masks, inside the image, and
    whether the eye is seen [K] (at least 4 mask pixels: a turned head hides one eye)."""
    m = torch.cat([t[key].float().reshape(-1, H, H) for _, t in batches])
    w, r = m.sum((1, 2)), torch.arange(H).float()
    cy, cx = ((m * r[None, :, None]).sum((1, 2)) / w.clamp_min(1e-6)).round().long(), ((m * r[None, None, :]).sum((1, 2)) / w.clamp_min(1e-6)).round().long()
    return (cy - c // 2).clamp(0, H - c), (cx - c // 2).clamp(0, H - c), w >= 4

boxes = [eye_boxes(k) for k in ("left_eye_mask", "right_eye_mask")]
def eyes(img: torch.Tensor) -> torch.Tensor:
    "The seen eyes of every image [E,3,c,c]."
    return torch.stack([img[i, :, y0[i]:y0[i] + c, x0[i]:x0[i] + c] for y0, x0, seen in boxes for i in range(len(img)) if seen[i]])

truth_eyes = eyes(truth)
print(f"{len(truth)} pairs of {sp.pairs_file}, {sum(int(b[2].sum()) for b in boxes)} seen eyes in crops of {c}x{c} px of {H}\n")
print("| source | row | PSNR whole | SSIM whole | PSNR eyes | SSIM eyes |\n|---|---|---:|---:|---:|---:|")
for src in args.sources:
    row = vae_predictors(src)[0] if Path(src).is_dir() else model_predictors(src, src, FitConfig(steps=0))[0]   # the protocol's own rows
    with torch.no_grad(): pred = torch.cat([row.fn(i, t).clamp(0, 1) for i, t in batches])
    pred_eyes = eyes(pred)
    print(f"| `{src}` | {row.label} | {psnr(pred, truth).mean():.2f} | {ssim(pred, truth).mean():.3f} | "
          f"{psnr(pred_eyes, truth_eyes).mean():.2f} | {ssim(pred_eyes, truth_eyes, downsample=False).mean():.3f} |", flush=True)
