"""How far the Gaussian stage puts the eyeballs from the data's: on the test subjects' first 10 images, codes from the
encoder (as at test time), the eyeball centres' 3D error (mm, and per axis of the head frame) and their projected error
in the image (pixels). Run in the folder of a finished `make repro` (data/ with eyeball centres, runs/gaussians/).

python scripts/eye_centres.py [GAUSSIANS_CHECKPOINT]     (default: runs/gaussians/last.pt)"""
import glob, json, sys

import h5py
import torch

from ditgaze.geometry import project
from ditgaze.training import load_streams

torch.set_num_threads(1)
streams, _ = load_streams(sys.argv[1] if len(sys.argv) > 1 else "runs/gaussians/last.pt")
err, px, axes = [], [], []
for fn in sorted(glob.glob("data/synthetic/test/*.h5")):
    with h5py.File(fn) as f:
        n = min(len(f["face_patch"]), 10)
        T = lambda k: torch.from_numpy(f[k][()][:n]).float()
        img = (T("face_patch") / 255).permute(0, 3, 1, 2).contiguous()
        ec, gaze_head, R, t, K = (T(k) for k in ("ditgaze_eyeball_centers", "pitchyaw_head", "w2c_Rmat", "w2c_Tvec", "inmat"))
    with torch.no_grad(): g = streams.head(*streams.encoder(img), gaze_head)
    err.append((g.eye_centers - ec).norm(dim=-1).flatten()); axes.append((g.eye_centers - ec).abs().reshape(-1, 3))
    px.append((project(g.eye_centers, K, R, t) - project(ec, K, R, t)).norm(dim=-1).flatten())
print(json.dumps({"centre_mm": round(float(torch.cat(err).mean()), 2), "abs_xyz_mm": [round(float(v), 2) for v in torch.cat(axes).mean(0)],
                  "projected_px": round(float(torch.cat(px).mean()), 2)}))
