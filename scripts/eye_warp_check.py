"""Does the Gaussian stage carry the gaze into the eyes? Two checks on 64 test pairs, in the folder of a finished
`make repro` (data/, runs/gaussians/, runs/estimators/), read by the evaluation estimator:

1. composite: the target image with its eye pixels (dilated by 2 px) replaced by the source warped into the target
   view, where the warp sees them; the eyes read at the target's gaze (each eye Gaussian read where it sat at the
   source's gaze) or carried unturned (read where it sits at the target's gaze). Lower gaze error: the warp turns the iris.
2. preview: the Gaussian stage's own RGB preview rendered at the image size in the eye pixels, and how far its reading
   moves when the requested yaw moves by +-20 degrees.

python scripts/eye_warp_check.py [EYE_TOL_MM]   (default 5)"""
import sys

import torch
import torch.nn.functional as F

from ditgaze.data import whiten
from ditgaze.estimators import load_estimator
from ditgaze.gaussian_head import cat_gaussians, render_streams, scale_intrinsics
from ditgaze.geometry import angular_error
from ditgaze.losses import region_masks
from ditgaze.rasterize import rasterize
from ditgaze.redirector import ModelConfig, front, source_depth, warp_source
from ditgaze.training import PairData, load_streams

tol_eye = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
torch.set_num_threads(1)
st, _ = load_streams("runs/gaussians/last.pt"); st.eval()
data = PairData("data/synthetic/test", 5.0, 2, 0)
b = data.batch(torch.arange(0, len(data.pairs), max(1, len(data.pairs) // 64))[:64], "cpu"); inp, tgt = b["input"], b["target"]
est = load_estimator("runs/estimators/gaze_eval.pt").eval()
S, r, cfg = st.cfg.image_size, st.cfg.render_size, ModelConfig()
with torch.no_grad():
    white = whiten(tgt["image"], region_masks(tgt)["head"])
    err = lambda im: float(angular_error(est(im)[:, :2], tgt["gaze"]).mean())
    eyem = ((tgt["left_eye_mask"] + tgt["right_eye_mask"]) > 0.5).float()
    eyem = eyem if eyem.ndim == 4 else eyem[:, None]
    print(f"target itself (the floor on these pairs): {err(white):.2f} deg")
    z_id, z_exp = st.encoder(inp["image"])
    g, gs = st.gaussians(z_id, z_exp, tgt["gaze"], tgt["w2c"]), st.gaussians(z_id, z_exp, inp["gaze"], inp["w2c"])
    Nf = g.face.means.shape[1]
    for name, e_src in (("eyes carried unturned", g.eyes), ("eyes turned to the target's gaze", gs.eyes)):
        G = front(cat_gaussians(g.face, g.eyes), cfg.warp_opacity_power)
        eye = torch.zeros_like(G.opacities)[..., None]; eye[:, Nf:] = 1
        pts, alpha, _ = rasterize(G.means, G.quats, G.scales, G.opacities, torch.cat([torch.cat([g.face.means, e_src.means], 1), eye], -1),
                                  tgt["w2c"], scale_intrinsics(tgt["K"], r / S), r, r)
        a = alpha.clamp_min(1e-6)
        d, sa = source_depth(front(cat_gaussians(g.face, e_src), cfg.warp_opacity_power), inp["w2c"], inp["K"], S, r)
        w = warp_source(pts[:, :3] / a, alpha, pts[:, 3:] / a, inp["image"], inp["w2c"], inp["K"], d, sa, cfg.warp_tol_mm, tol_eye)
        vis = w[:, 3:] * F.max_pool2d(eyem, 5, 1, 2)
        print(f"composite, {name}: {err(white * (1 - vis) + w[:, :3] * vis):.2f} deg ({float((w[:, 3:] * eyem).sum() / eyem.sum()):.0%} of eye pixels seen)")
    for dy in (-20, 0, 20):
        g2 = st.gaussians(z_id, z_exp, tgt["gaze"] + torch.tensor([0.0, dy * torch.pi / 180]), tgt["w2c"])
        prev = render_streams(g2, tgt["w2c"], tgt["K"], S, S, 1.0, ("head",), "torch")["head"][:, :3]
        comp = white * (1 - eyem) + prev * eyem
        print(f"preview eyes, yaw request {dy:+d} deg: reading minus the target's yaw {float(torch.rad2deg(est(comp)[:, 1] - tgt['gaze'][:, 1]).mean()):+.2f} deg")
