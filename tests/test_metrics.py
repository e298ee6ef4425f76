"ditgaze.metrics: the FID Inception wiring against piq's, bad input across the API, and a light import."
import subprocess, sys, textwrap

import numpy as np
import pytest
import torch

from ditgaze import metrics as M


def test_import_is_light():
    code = "import sys, ditgaze.metrics; bad = [m for m in ('torchvision', 'lpips', 'piq', 'scipy', 'skimage') if m in sys.modules]; assert not bad, bad"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1000:]


def test_fid_inception_matches_piq_with_same_weights(tmp_path, monkeypatch):
    "Our FID Inception, given a weights file, gives the features piq's InceptionV3 (pytorch-fid's port) gives with the same weights."
    torch.manual_seed(0)
    ours = M.FIDInception()
    for mod in ours.modules():                       # init_weights=False leaves BN at identity: randomise it too
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)
    sd = ours.net.state_dict()
    torch.save(sd, tmp_path / "pt_inception.pth")
    net, desc = M.load_fid_inception(tmp_path / "pt_inception.pth")
    assert desc == "inception-v3-fid (pt_inception.pth)"
    import piq.feature_extractors.fid_inception as fi
    monkeypatch.setattr(fi, "load_state_dict_from_url", lambda *a, **k: sd)
    tv_inception = fi.models.inception_v3            # skip torchvision's slow truncated-normal init: the weights are replaced anyway
    monkeypatch.setattr(fi.models, "inception_v3", lambda **k: tv_inception(**{**k, "init_weights": False}))
    ref = fi.InceptionV3().eval()
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): expected = ref(x)[0].flatten(1)
    got = M.features(net, x, batch_size=1)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert got.std() > 1e-3                          # not a degenerate (constant) feature map


def test_fid_inception_bad_file(tmp_path):
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad.pth: not FID Inception weights; missing key"):
        M.load_fid_inception(tmp_path / "bad.pth")
    net, why = M.load_fid_inception(tmp_path / "absent.pth")
    assert net is None and "absent.pth not found" in why


def _img(seed, n=2, s=16):
    return torch.rand(n, 3, s, s, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fn", [M.psnr, M.ssim, M.image_metrics])
def test_image_metrics_bad_input(fn):
    x, y = _img(0), _img(1)
    with pytest.raises(TypeError, match="pred: dtype uint8"): fn((x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"gt: values must lie in \[0, 1\]"): fn(x, y * 2 - 1)
    nan = y.clone(); nan[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="gt: contains NaN"): fn(x, nan)
    with pytest.raises(ValueError, match=r"pred \(2, 3, 16, 16\) and gt \(1, 3, 16, 16\) differ in shape"): fn(x, y[:1])
    with pytest.raises(ValueError, match="pred: expected images"): fn(x.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1))


def test_lpips_from_whole_state_dict_and_bad_input(tmp_path):
    "A whole lpips.LPIPS state dict (object or file) reproduces lpips' value exactly; bad input is named."
    torch.manual_seed(0)
    import lpips
    ref = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    torch.nn.init.uniform_(ref.lin2.model[1].weight)   # lin layers differ from the package's: they must come from the dict
    torch.save(ref.state_dict(), tmp_path / "lpips_vgg_full.pth")
    m, desc = M.load_lpips(tmp_path / "lpips_vgg_full.pth")
    assert desc.endswith("lpips_vgg_full.pth")
    x, y = _img(2, s=32), _img(3, s=32)
    with torch.no_grad(): expected = ref(x * 2 - 1, y * 2 - 1).flatten()
    assert torch.equal(M.lpips_distance(x, y, m), expected)
    assert torch.equal(M.image_metrics(x, y, lpips_model=m)["lpips"], expected)
    with pytest.raises(ValueError, match="pred: values must lie"): M.lpips_distance(_img(0) + 1, _img(1), m)
    with pytest.raises(ValueError, match="gt mask: expected"): M.image_metrics(_img(0), _img(1), mask=torch.ones(2, 8, 8))


def test_other_bad_input():
    with pytest.raises(ValueError, match="generated: values must lie"): M.identity_similarity(_img(0) * 3, _img(1), embed=lambda x: x.flatten(1))
    with pytest.raises(ValueError, match="gaze label: expected pitch/yaw"): M.redirection_errors(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="head target: contains NaN"): M.redirection_errors(torch.zeros(1, 2), torch.full((1, 2), float("nan")), prefix="head")
    with pytest.raises(TypeError, match="gaze generated: pitch/yaw must be float"): M.redirection_errors(torch.zeros(1, 2, dtype=torch.int64), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="fake features: contains NaN"): M.frechet_distance(np.zeros((3, 2)), np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="lpips: no values"): M.summarize({"lpips": []})


def test_frechet_rank_deficient_is_finite_and_close_to_scipy():
    "Fewer samples than dimensions: eigenvalue route stays real and agrees with sqrtm's real part."
    from scipy import linalg
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 32)), rng.normal(size=(25, 32)) + 0.2
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    got = M.frechet_distance(a, b)
    assert np.isfinite(got) and abs(got - ref) < 1e-5 * abs(ref)


@pytest.mark.gpu
def test_images_per_second_synchronises_cuda():
    "An asynchronous GPU workload is timed to completion: the synchronised timing is much longer than the launch time."
    x = torch.randn(4096, 4096, device="cuda")
    work = lambda: [x @ x for _ in range(20)]
    r = M.images_per_second(work, n_images=1, device="cuda", warmup=2, repeats=3)
    torch.cuda.synchronize(); t = __import__("time").perf_counter(); work(); torch.cuda.synchronize()
    full = __import__("time").perf_counter() - t
    assert r["ms_per_image"] / 1000 > 0.5 * full, (r, full)
