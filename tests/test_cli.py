"""The user commands `ditgaze redirect` and `ditgaze sweep` as a user runs them: the real entry point in its own process, on a tiny
untrained checkpoint (no pipeline output needed). A bad argument is one line on stderr naming it, exit code 2, no traceback."""
import os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def ditgaze(*argv, cwd: Path) -> subprocess.CompletedProcess:
    "`python -m ditgaze.cli ARGV` with this checkout's package first on the path, one thread."
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ditgaze.cli", *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    "A tiny model's checkpoint (32 px, the toy face template), a subject file of 3 rows in its cameras, and a face PNG."
    from ditgaze.data import DITGAZE_SCHEMA, write_subject
    from ditgaze.gaussian_head import GaussianHeadConfig, toy_face
    from ditgaze.redirector import ModelConfig, StreamsConfig, build_model, model_state
    from ditgaze.renderers.base import AppearanceConfig
    from ditgaze.renderers.unet import UNetConfig
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    tf = toy_face()
    build = {"template": {k: tf[k] for k in ("landmarks", "eyeball_centers", "eyeball_radius", "iris_radius")}, "n_subjects": 2, "n_images": 4}
    model = build_model(StreamsConfig(image_size=32, render_size=16, pose_width=4,
                                      head=GaussianHeadConfig(n_face=200, n_eye=40, feature_dim=8, id_dim=8, exp_dim=4, hidden=16, encoder_width=8)),
                        ModelConfig(unet=UNetConfig(width=8, mults=(1, 2), heads=2, groups=4), cond_dim=16, appearance=AppearanceConfig(width=4, grid=2)),
                        build).eval()
    ck = d / "runs" / "tiny" / "last.pt"; ck.parent.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "step": 0, **model_state(model, build)}, ck)
    n, g = 3, np.random.default_rng(0)
    a = {k: np.zeros([{"N": n, "H": 32, "W": 32, "E": 4, "P": 8}[s] if isinstance(s, str) else s for s in v.shape], v.dtype)
         for k, v in DITGAZE_SCHEMA.items() if v.required}
    a["face_patch"] = g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    a["pitchyaw"] = g.uniform(-0.2, 0.2, (n, 2)).astype(np.float32)
    with torch.no_grad(): cam = model.streams.default_camera(torch.zeros(n, 3, 32, 32), head_pose=torch.zeros(n, 2))
    a["w2c_Rmat"], a["w2c_Tvec"], a["inmat"] = cam["w2c"][:, :3, :3].numpy(), cam["w2c"][:, :3, 3].numpy(), cam["K"].numpy()
    h5 = d / "s000.h5"
    write_subject(h5, a, {"subject": "s000", "split": "test", "domain": "toy", "image_size": 32, "generator": "toy", "seed": 0})
    Image.fromarray(g.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / "face.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "small.png")
    return {"dir": d, "ck": ck, "h5": h5}


def test_redirect_and_sweep_write_their_pngs(tiny):
    d = tiny["dir"]
    r = ditgaze("redirect", "--checkpoint", tiny["ck"], "--input", f"{tiny['h5']}:1", "--gaze", "-10,20", "--out", d / "out" / "red.png", cwd=d)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "[redirect] s000.h5:1" in r.stdout
    assert Image.open(d / "out" / "red.png").size == (32, 32)
    r = ditgaze("sweep", "--checkpoint", tiny["ck"], "--input", d / "face.png", "--pitches", "-10,10", "--yaws", "-20,0,20", "--out", d / "sweep.png", cwd=d)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "6 gazes (2 pitches x 3 yaws)" in r.stdout and "camera estimated" in r.stdout
    assert Image.open(d / "sweep.png").size == (round(1.3 * 4 * 110), round((1.35 * 2 + 0.25) * 110))   # the input + 3 yaws, 2 pitches, a title; 110 dpi


@pytest.mark.parametrize("case", ["checkpoint", "size", "range", "row"])   # the notebook tests the others, in process
def test_a_bad_argument_is_one_line_naming_it(tiny, case):
    d, ck, h5 = tiny["dir"], tiny["ck"], tiny["h5"]
    argv, arg, text = {
        "checkpoint": (("--checkpoint", d / "nope.pt", "--input", f"{h5}:0", "--gaze", "0,0"), "--checkpoint", "checkpoint not found"),
        "size": (("--checkpoint", ck, "--input", d / "small.png", "--gaze", "0,0"), "--input", "this model takes 32x32 px"),
        "range": (("--checkpoint", ck, "--input", f"{h5}:0", "--gaze", "0,75"), "--gaze", "±60° in yaw"),
        "row": (("--checkpoint", ck, "--input", f"{h5}:9", "--gaze", "0,0"), "--input", "which has 3 rows: 0..2"),
    }[case]
    r = ditgaze("redirect", *argv, "--out", d / f"bad_{case}.png", cwd=d)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"ditgaze redirect: error: {arg}: ") and text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (d / f"bad_{case}.png").exists()


def test_debug_shows_the_traceback(tiny):
    r = ditgaze("redirect", "--checkpoint", tiny["dir"] / "nope.pt", "--input", f"{tiny['h5']}:0", "--gaze", "0,0", "--out", tiny["dir"] / "x.png",
                "--debug", cwd=tiny["dir"])
    assert r.returncode == 1 and "Traceback" in r.stderr and "UsageError: --checkpoint:" in r.stderr, r.stderr
