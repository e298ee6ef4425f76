"""How far the Gaussian stage puts the eyeballs from the data's: on the test subjects' first 10 images, codes from the
encoder (as at test time), the eyeball centres' 3D error (mm, and per axis of the head frame) and their projected error
in the image (pixels). Run in the folder of a finished `make repro` (data/ with eyeball centres, runs/gaussians/).

python scripts/eye_centres.py [GAUSSIANS_CHECKPOINT]     (default: runs/gaussians/last.pt)"""
import glob, json, sys

import h5py
import torch
import torch.nn.functional as F

from ditgaze.geometry import vector_to_pitchyaw
from ditgaze.training import load_streams

torch.set_num_threads(1)
streams, _ = load_streams(sys.argv[1] if len(sys.argv) > 1 else "runs/gaussians/last.pt")
err, px, axes = [], [], []
for fn in sorted(glob.glob("data/synthetic/test/*.h5")):
    with h5py.File(fn) as f:
        n = min(len(f["face_patch"]), 10)
        T = lambda k: torch.from_numpy(f[k][()][:n]).float()
        img = (T("face_patch") / 255).permute(0, 3, 1, 2).contiguous()
        ec, lm, tgt, R, t, K = (T(k) for k in ("ditgaze_eyeball_centers", "facial_landmarks_3d", "ditgaze_gaze_target", "w2c_Rmat", "w2c_Tvec", "inmat"))
    gaze_head = vector_to_pitchyaw(F.normalize(tgt - lm[:, [36, 39, 42, 45, 48, 54]].mean(1), dim=-1))   # from the face centre (head frame)
    with torch.no_grad(): g = streams.head(*streams.encoder(img), gaze_head)
    def project(X):
        uvw = torch.einsum("bij,bej->bei", K, torch.einsum("bij,bej->bei", R, X) + t[:, None])
        return uvw[..., :2] / uvw[..., 2:]
    err.append((g.eye_centers - ec).norm(dim=-1).flatten()); px.append((project(g.eye_centers) - project(ec)).norm(dim=-1).flatten())
    axes.append((g.eye_centers - ec).abs().reshape(-1, 3))
print(json.dumps({"centre_mm": round(float(torch.cat(err).mean()), 2), "abs_xyz_mm": [round(float(v), 2) for v in torch.cat(axes).mean(0)],
                  "projected_px": round(float(torch.cat(px).mean()), 2)}))
