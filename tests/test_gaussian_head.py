"Tests of ditgaze.gaussian_head that do not belong in the notebook: config from YAML, bad input, conventions end to end, determinism, a short fit."
import math, textwrap
from pathlib import Path

import pytest
import torch

from ditgaze.config import ConfigError, load_params
from ditgaze.gaussian_head import (GaussianHead, GaussianHeadConfig, render_streams, toy_face, viewmat)
from ditgaze.geometry import euler_to_matrix, focal_for_size, pitchyaw_to_vector, project
from ditgaze.training import GaussiansConfig

ROOT = Path(__file__).resolve().parents[1]


def small_head(seed=0, **kw):
    f = toy_face()
    cfg = GaussianHeadConfig(**{"n_face": 300, "n_eye": 120, "hidden": 32, "seed": seed, **kw})
    return GaussianHead(cfg, f["landmarks"], f["eyeball_centers"], f["eyeball_radius"], f["iris_radius"], n_subjects=2, n_images=4)


def test_config_from_params_yaml(tmp_path):
    "The head config lives at `gaussians.streams.head`: defaults from the dataclass, then the section, then the profile; typos are named."
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent("""
        profile: smoke
        profiles:
          smoke: {gaussians: {streams: {head: {n_face: 500, n_eye: 100}}}}
        gaussians:
          streams: {head: {n_face: 2000, feature_dim: 16, seed: 3}}
    """))
    head = load_params(p, {"gaussians": GaussiansConfig})["gaussians"].streams.head
    assert (head.n_face, head.n_eye, head.feature_dim, head.seed) == (500, 100, 16, 3)
    assert head.hidden == GaussianHeadConfig().hidden                               # absent keys: the dataclass default
    assert load_params(p, {"gaussians": GaussiansConfig}, "smoke")["gaussians"].streams.head == head
    p.write_text(p.read_text().replace("seed: 3}", "seed: 3, n_faces: 3}"))
    with pytest.raises(ConfigError, match=f"{p}: unknown key 'gaussians.streams.head.n_faces'"): load_params(p, {"gaussians": GaussiansConfig})
    p.write_text(p.read_text().replace("n_faces: 3", "face_opacity: 1.5"))
    with pytest.raises(ConfigError, match="key 'gaussians.streams.head.face_opacity': must be in \\(0, 1\\)"): load_params(p, {"gaussians": GaussiansConfig})


def test_dataclass_defaults_are_the_default_profile():
    "params.yaml's default profile changes nothing in the head: `GaussianHeadConfig()` is what the pipeline trains by default."
    head = load_params(ROOT / "params.yaml", {"gaussians": GaussiansConfig}, "default")["gaussians"].streams.head
    assert head == GaussianHeadConfig()
    smoke = load_params(ROOT / "params.yaml", {"gaussians": GaussiansConfig}, "smoke")["gaussians"].streams.head
    assert smoke != head and smoke.n_face == 300


def test_bad_inputs_name_the_argument():
    f = toy_face()
    cfg = GaussianHeadConfig(n_face=200, n_eye=100, hidden=16)
    with pytest.raises(ValueError, match="eyeball_centers"): GaussianHead(cfg, f["landmarks"], torch.zeros(3, 3), 12, 6, 1)
    with pytest.raises(ValueError, match="iris_radius"): GaussianHead(cfg, f["landmarks"], f["eyeball_centers"], 6, 12, 1)
    with pytest.raises(ValueError, match="n_subjects"): GaussianHead(cfg, f["landmarks"], f["eyeball_centers"], 12, 6, 0)
    with pytest.raises(ValueError, match="n_eye"): GaussianHead(GaussianHeadConfig(n_face=200, n_eye=10), f["landmarks"], f["eyeball_centers"], 12, 6, 1)
    h = GaussianHead(cfg, f["landmarks"], f["eyeball_centers"], 12, 6, 1)
    z_id, z_exp = h.codes(torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="gaze_head"): h(z_id, z_exp, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="eye_centers"): h(z_id, z_exp, torch.zeros(2, 2), eye_centers=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="z_id"): h(torch.zeros(2, 5), z_exp, torch.zeros(2, 2))


def test_iris_lands_where_geometry_projects_it():
    "Render the eyes through a turned head's camera; the dark iris blob sits where geometry.project puts centre + r * gaze."
    h = small_head(n_eye=400)
    size, R_head = 96, euler_to_matrix(torch.tensor(0.15), torch.tensor(-0.3))     # head -> camera rotation
    t = torch.tensor([0.0, 0.0, 600.0])
    V = viewmat(R_head, t)
    f = focal_for_size(size) * 1.4
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    gazes = torch.tensor([[0.0, 0.0], [0.3, 0.2], [-0.2, -0.4]])
    n = len(gazes)
    with torch.no_grad():
        o = h(h.identity.weight[[0] * n], torch.zeros(n, h.cfg.exp_dim), gazes)
        mp = render_streams(o, V.expand(n, 4, 4), K.expand(n, 3, 3), size, size, streams=("eye",), backend="torch")
    for b in range(n):
        # iris centre of the subject's left eye (first eye): the iris cap's centre on the sphere, approximated by
        # the mean of the iris Gaussians, projected
        iris3d = o.eyes.means[b, : h.cfg.n_eye][h.iris_mask[0]].mean(0)                # [3] head frame
        expected = o.eye_centers[b, 0] + pitchyaw_to_vector(gazes[b]) * (iris3d - o.eye_centers[b, 0]).norm()
        torch.testing.assert_close(iris3d, expected, atol=1e-3, rtol=0)               # iris mean on the gaze ray
        uv = project(iris3d[None], K, R_head, t)[0]                                    # [2] pixels
        assert ((uv > 12) & (uv < size - 12)).all(), uv                                  # well inside the image
        dark = (mp["eye"][b, :3].mean(0) < 0.4) & (mp["alpha_eye"][b, 0] > 0.5)     # [H,W]
        ys, xs = torch.nonzero(dark, as_tuple=True)
        left = (xs.float() - uv[0]).abs() < 10                                        # the left eye's blob only
        cxy = torch.stack([xs[left].float().mean(), ys[left].float().mean()]) + 0.5   # pixel centres
        assert (cxy - uv).norm() < 2.0, (b, cxy, uv)


def test_deterministic_init_and_state_dict_round_trip():
    a, b, c = small_head(seed=0), small_head(seed=0), small_head(seed=1)
    for k, v in a.state_dict().items():
        if k.startswith(("deform", "eye_color", "gaze_residual")): continue             # MLP weights follow the global torch seed
        assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(a.face_means, c.face_means)
    torch.manual_seed(0); a2 = small_head()
    a2.load_state_dict(a.state_dict())
    z = a.codes(torch.tensor([0, 1]), torch.tensor([2, 3]))
    g = torch.tensor([[0.1, 0.2], [-0.3, 0.0]])
    with torch.no_grad():
        o, o2 = a(*z, g), a2(*z, g)
    assert torch.equal(o.face.means, o2.face.means) and torch.equal(o.eyes.features, o2.eyes.features)


def test_training_reduces_image_loss():
    "A few Adam steps on all parameters fit a rendered target of a differently initialised head."
    torch.manual_seed(0)
    size = 32
    V = viewmat(torch.eye(3), torch.tensor([0.0, 0.0, 600.0]))[None]
    f = focal_for_size(size) * 0.5
    K = torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]])
    target_head, h = small_head(seed=3, face_opacity=0.6), small_head(seed=0)
    g = torch.tensor([[0.2, -0.3]])
    with torch.no_grad():
        tgt = render_streams(target_head(target_head.identity.weight[:1], torch.zeros(1, 16), g), V, K, size, size, streams=("head",))["head"]
    opt = torch.optim.Adam(h.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        z_id, z_exp = h.codes(torch.tensor([0]), torch.tensor([0]))
        out = render_streams(h(z_id, z_exp, g), V, K, size, size, streams=("head",))["head"]
        loss = (out - tgt).abs().mean()
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses
