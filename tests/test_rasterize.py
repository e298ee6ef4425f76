"ditgaze.rasterize: the torch backend against a brute-force per-pixel reference, gradients, errors, and gsplat (GPU)."
import math

import pytest
import torch

from ditgaze.rasterize import random_scene, rasterize


def reference(means, quats, scales, opacities, features, viewmats, Ks, width, height, background=None,
              eps2d=0.3, near_plane=0.01):
    """Deliberately simple: every pixel visits every Gaussian, front to back, in float64 Python loops.

    gsplat's rules: EWA projection with its Jacobian clamp, 2D covariance + eps2d, pixel centres at +0.5,
    alpha = min(0.999, o exp(-0.5 d^T Q d)), skip alpha < 1/255, stop before T would reach <= 1e-4."""
    B, N, C = features.shape
    out = torch.zeros(B, C, height, width, dtype=torch.float64)
    alpha_img = torch.zeros(B, 1, height, width, dtype=torch.float64)
    depth_img = torch.zeros(B, 1, height, width, dtype=torch.float64)
    for b in range(B):
        R, t = viewmats[b, :3, :3].double(), viewmats[b, :3, 3].double()
        fx, fy, cx, cy = (Ks[b, 0, 0].item(), Ks[b, 1, 1].item(), Ks[b, 0, 2].item(), Ks[b, 1, 2].item())
        splats = []
        for n in range(N):
            w, x, y, z = (quats[b, n].double() / quats[b, n].double().norm()).tolist()
            Rq = torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                               [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                               [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]], dtype=torch.float64)
            M = Rq @ torch.diag(scales[b, n].double())
            cov_c = R @ (M @ M.T) @ R.T
            pc = R @ means[b, n].double() + t
            tz = pc[2].item()
            if tz <= near_plane: continue
            limx, limy = 1.3 * 0.5 * width / fx, 1.3 * 0.5 * height / fy
            tx = tz * min(max(pc[0].item() / tz, -cx / fx - 0.3 * 0.5 * width / fx), (width - cx) / fx + 0.3 * 0.5 * width / fx)
            ty = tz * min(max(pc[1].item() / tz, -cy / fy - 0.3 * 0.5 * height / fy), (height - cy) / fy + 0.3 * 0.5 * height / fy)
            J = torch.tensor([[fx / tz, 0, -fx * tx / tz ** 2], [0, fy / tz, -fy * ty / tz ** 2]], dtype=torch.float64)
            cov2d = J @ cov_c @ J.T + eps2d * torch.eye(2, dtype=torch.float64)
            mean2d = (fx * pc[0].item() / tz + cx, fy * pc[1].item() / tz + cy)
            splats.append((tz, mean2d, torch.linalg.inv(cov2d), opacities[b, n].item(), features[b, n].double(), n))
        splats.sort(key=lambda s: s[0])
        for i in range(height):
            for j in range(width):
                T, acc, dep = 1.0, torch.zeros(C, dtype=torch.float64), 0.0
                for tz, m, Q, o, f, _ in splats:
                    d = torch.tensor([j + 0.5 - m[0], i + 0.5 - m[1]], dtype=torch.float64)
                    a = min(0.999, o * math.exp(-0.5 * (d @ Q @ d).item()))
                    if a < 1 / 255: continue
                    if T * (1 - a) <= 1e-4: break
                    acc += a * T * f; dep += a * T * tz; T *= 1 - a
                bg = torch.zeros(C, dtype=torch.float64) if background is None else background[b].double()
                out[b, :, i, j] = acc + T * bg
                alpha_img[b, 0, i, j] = 1 - T
                depth_img[b, 0, i, j] = dep / max(1 - T, 1e-10)
    return out, alpha_img, depth_img


def small_scene(n=12, batch=2, channels=5, width=10, height=8, seed=0, dtype=torch.float64):
    "A few Gaussians filling a tiny image, partly overlapping, one behind the camera, one off screen."
    g = torch.Generator().manual_seed(seed)
    means = torch.cat([torch.rand(batch, n, 2, generator=g, dtype=dtype) * 2 - 1,
                       2 + 2 * torch.rand(batch, n, 1, generator=g, dtype=dtype)], -1)          # [B,N,3]
    means[:, 0, 2] = -1.0                                                                       # behind the camera
    means[:, 1, 0] = 30.0                                                                       # far off screen
    quats = torch.randn(batch, n, 4, generator=g, dtype=dtype)
    scales = 0.05 + 0.25 * torch.rand(batch, n, 3, generator=g, dtype=dtype)
    opacities = 0.1 + 0.9 * torch.rand(batch, n, generator=g, dtype=dtype)
    opacities[:, 2] = 0.999                                                                     # saturates alpha
    features = torch.rand(batch, n, channels, generator=g, dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype).repeat(batch, 1, 1)
    viewmats[1:, 0, 3] = 0.2                                                                    # second camera shifted
    Ks = torch.tensor([[8.0, 0, width / 2], [0, 8.0, height / 2], [0, 0, 1]], dtype=dtype).repeat(batch, 1, 1)
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, features=features,
                viewmats=viewmats, Ks=Ks, width=width, height=height)


@pytest.mark.parametrize("tile_size,chunk_size", [(8, 2 ** 21), (4, 2 ** 21), (4, 40), (16, 300)])
def test_torch_backend_matches_reference(tile_size, chunk_size):
    "Several tile sizes and tiny chunk budgets (which force depth blocks), with a per-element background."
    sc = small_scene()
    bg = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    ref = reference(**sc, background=bg)
    got = rasterize(**sc, background=bg, backend="torch", tile_size=tile_size, chunk_size=chunk_size)
    assert ref[1].max() > 0.9 and ref[1].min() < 0.5      # the scene has both covered and open pixels
    for r, g, name in zip(ref, got, ("features", "alpha", "depth")):
        assert g.shape == r.shape, name
        assert (g - r).abs().max() < 1e-9, f"{name}: max abs diff {(g - r).abs().max():.3g}"


def test_early_termination_matches_reference():
    "A stack of nearly opaque splats: the pixel stops before T <= 1e-4, exactly where gsplat stops."
    sc = small_scene(n=8, batch=1, seed=3)
    sc["means"][..., :2] = 0.0; sc["means"][..., 2] = torch.linspace(2, 3, 8, dtype=torch.float64)
    sc["scales"].fill_(0.5); sc["opacities"].fill_(0.97)
    ref, got = reference(**sc), rasterize(**sc, backend="torch", chunk_size=64 * 3)
    assert ref[1].max() > 1 - 1e-3
    for r, g in zip(ref, got): assert (g - r).abs().max() < 1e-9


def test_float32_and_shared_gaussians():
    "float32 agrees with the float64 reference; unbatched Gaussians [N,...] equal the same Gaussians repeated."
    sc = small_scene()
    ref = reference(**sc)
    got = rasterize(**{k: (v.float() if torch.is_tensor(v) else v) for k, v in sc.items()}, backend="torch")
    for r, g in zip(ref, got): assert (g.double() - r).abs().max() < 1e-4
    shared = {k: (v[0] if k in ("means", "quats", "scales", "opacities", "features") else v) for k, v in sc.items()}
    rep = {k: (v[:1].expand_as(sc[k]) if k in ("means", "quats", "scales", "opacities", "features") else v) for k, v in sc.items()}
    for a, b in zip(rasterize(**shared, background=torch.ones(5, dtype=torch.float64)),
                    rasterize(**rep, background=torch.ones(5, dtype=torch.float64))):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_gradcheck(backward):
    "fp64 gradcheck of features, alpha and depth w.r.t. means, features, opacities and scales (3 Gaussians, 8x8)."
    sc = small_scene(n=3, batch=1, channels=2, width=8, height=8, seed=1)
    sc["means"][..., 2] = torch.tensor([2.0, 2.5, 3.0], dtype=torch.float64); sc["means"][..., :2] *= 0.3
    sc["opacities"] = torch.tensor([[0.6, 0.7, 0.8]], dtype=torch.float64)
    names = ("means", "features", "opacities", "scales")
    def f(*xs):
        kw = {**sc, **dict(zip(names, xs))}
        return rasterize(**kw, background=torch.tensor([0.3, 0.7], dtype=torch.float64), backend="torch", backward=backward)
    inputs = tuple(sc[k].clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def test_manual_backward_equals_autograd():
    "The closed-form backward against autograd through the plain-torch blend, with depth blocks (small chunks)."
    sc = random_scene(300, batch=2, channels=4, width=24, height=20, seed=2, dtype=torch.float64)
    grads = []
    for mode in ("manual", "autograd"):
        xs = {k: sc[k].clone().requires_grad_(True) for k in ("means", "features", "opacities", "scales", "quats")}
        f, a, d = rasterize(**{**sc, **xs}, backend="torch", backward=mode, chunk_size=2000)
        (f.square().sum() + a.sum() + 1e-3 * d.sum()).backward()
        grads.append([xs[k].grad for k in xs])
    for g1, g2 in zip(*grads): assert torch.allclose(g1, g2, atol=1e-10)
    assert all(g.abs().sum() > 0 for g in grads[0])


@pytest.mark.parametrize("change,msg", [
    (dict(means=torch.zeros(2, 12, 2)), "means must have shape [B,N,3] or [N,3]"),
    (dict(quats=torch.zeros(2, 12, 3)), "quats must have shape [B,N,4]"),
    (dict(scales=torch.zeros(2, 11, 3)), "scales must have shape [B,N,3]"),
    (dict(opacities=torch.zeros(2, 12, 1)), "opacities must have shape [B,N]"),
    (dict(features=torch.zeros(12, 5)), "features must have shape [B,N,C]"),
    (dict(viewmats=torch.zeros(2, 3, 4)), "viewmats must have shape [B,4,4]"),
    (dict(Ks=torch.zeros(3, 3, 3)), "Ks must have shape [B,3,3]"),
    (dict(background=torch.zeros(4)), "background must have shape [C] or [B,C]"),
    (dict(width=0), "width must be a positive int"),
    (dict(backend="cuda"), "backend must be 'auto', 'torch' or 'gsplat'"),
    (dict(backend="gsplat"), "needs CUDA tensors"),
    (dict(features=torch.zeros(2, 12, 5, dtype=torch.long)), "features must be a float tensor"),
])
def test_errors_name_the_argument(change, msg):
    sc = {k: (v.float() if torch.is_tensor(v) else v) for k, v in small_scene().items()}
    with pytest.raises((ValueError, TypeError), match=None) as e:
        rasterize(**{**sc, **change})
    assert msg in str(e.value), str(e.value)


@pytest.mark.gpu
def test_gsplat_matches_torch_backend():
    """The CUDA backend against the torch backend on the same scene (float32, 32 channels, batch 2).

    Agreement is to float32 rounding, except where a splat's alpha sits within rounding of the 1/255 cut:
    one backend draws it and the other skips it, which moves a pixel by at most 1/255 (features and
    background are in [0,1]). So: the mean difference is tiny and the largest stays below 1/255 + 1e-3."""
    sc = random_scene(5000, batch=2, channels=32, width=128, height=128, seed=0, device="cuda")
    bg = torch.rand(2, 32, generator=torch.Generator().manual_seed(1)).cuda()
    a = rasterize(**sc, background=bg, backend="gsplat")
    b = rasterize(**sc, background=bg, backend="torch")
    assert a[0].shape == b[0].shape == (2, 32, 128, 128) and a[1].shape == a[2].shape == (2, 1, 128, 128)
    for x, y, name in ((a[0], b[0], "features"), (a[1], b[1], "alpha")):
        d = (x - y).abs()
        print(f"{name}: max abs diff {d.max().item():.3g}, mean {d.mean().item():.3g}")
        assert d.max() < 1 / 255 + 1e-3 and d.mean() < 1e-5, name
    covered = b[1] > 0.5
    rel = (a[2] - b[2]).abs()[covered] / b[2][covered]
    assert covered.float().mean() > 0.5 and rel.mean() < 1e-5 and rel.max() < 5e-3
