"""The `generate` stage end to end (`ditgaze generate` as a process, smoke profile, the data under a temporary folder):
files, schema, determinism across runs and worker counts, labels and pairs; bad params named in one line."""
import json, os, subprocess, sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from ditgaze.data import validate_subject_file

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
DITGAZE = Path(sys.executable).parent / "ditgaze"


def _params(tmp: Path, root: Path, profile: str = "smoke", **data) -> Path:
    "The repo's params.yaml with the data written under `root` (`data.root`), `data` keys set in the section, and `profile` in effect."
    d = yaml.safe_load(PARAMS.read_text())
    d["profile"] = profile
    d["data"] = {"root": str(root), **data}
    p = tmp / f"params_{root.name}.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def _generate(tmp: Path, params: Path, reports: Path, *extra):
    return subprocess.run([str(DITGAZE), "generate", "--params", str(params), "--reports", str(reports), "--no-progress", *extra],
                          capture_output=True, text=True, cwd=tmp)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    "Two smoke-profile runs into different folders (the second with workers=1, rendering in-process), and the first's result."
    tmp = tmp_path_factory.mktemp("gen")
    r1 = _generate(tmp, _params(tmp, tmp / "a"), tmp / "report")
    assert r1.returncode == 0, r1.stderr[-2000:]
    d = yaml.safe_load(PARAMS.read_text())
    assert "workers" not in d["profiles"]["smoke"]["data"]                      # run a: the default, 2 render processes
    r2 = _generate(tmp, _params(tmp, tmp / "b", workers=1), tmp / "report_b")
    assert r2.returncode == 0, r2.stderr[-2000:]
    return tmp, r1


def test_smoke_files_validate(smoke_runs):
    tmp, r = smoke_runs
    out = tmp / "a" / "synthetic"
    man = json.loads((out / "manifest.json").read_text())
    h5 = sorted(f for f in man["files"] if f.endswith(".h5"))
    assert len([f for f in h5 if f.startswith("train/")]) == 4 and len([f for f in h5 if f.startswith("test/")]) == 2
    assert {f.split("/")[0] for f in h5} == {"train", "test", "shift_light", "shift_identity"}
    for f in h5:
        info = validate_subject_file(out / f, full=True)
        assert info.image_size == 64
    assert (tmp / "a" / "synthetic.manifest.json").read_bytes() == (out / "manifest.json").read_bytes()   # the stage's declared copy
    assert (tmp / "report" / "data" / "contact_sheet.png").stat().st_size > 1000
    assert "img/s" in r.stdout


def test_smoke_byte_identical_across_runs_and_workers(smoke_runs):
    tmp, _ = smoke_runs
    a, b = tmp / "a" / "synthetic", tmp / "b" / "synthetic"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    ma = json.loads((a / "manifest.json").read_text()); mb = json.loads((b / "manifest.json").read_text())
    assert ma["files"] == mb["files"]                                      # same md5 for every file
    assert "workers" not in ma["params"]                                   # workers are not part of the data
    assert {k: v for k, v in ma["params"].items() if k != "root"} == {k: v for k, v in mb["params"].items() if k != "root"}
    for f in files:
        if f.name != "manifest.json": assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_smoke_labels_and_pairs(smoke_runs):
    tmp, _ = smoke_runs
    out = tmp / "a" / "synthetic"
    with h5py.File(out / "test" / "test_000.h5") as f:
        n = f["face_patch"].shape[0]
        R = f["w2c_Rmat"][:]; py_h = f["pitchyaw_head"][:]; py_n = f["pitchyaw"][:]
        eyes = f["left_eye_mask"][:].sum((1, 2)) + f["right_eye_mask"][:].sum((1, 2))
        assert (f["head_mask"][:].mean((1, 2)) > 0.3).all() and (eyes > 0).all()
    v = lambda py: np.stack([-np.cos(py[:, 0]) * np.sin(py[:, 1]), -np.sin(py[:, 0]), -np.cos(py[:, 0]) * np.cos(py[:, 1])], 1)
    np.testing.assert_allclose((R @ v(py_h)[..., None])[..., 0], v(py_n), atol=1e-5)   # pitchyaw = R_n R_h g_head
    rows = (out / "pairs_test.csv").read_text().splitlines()
    assert rows[0] == "subject,input_index,target_index" and len(rows) == 1 + 2 * n // 2
    for row in rows[1:]:
        s, i, t = row.split(","); assert 0 <= int(i) < n // 2 <= int(t) < n


def test_generate_refuses_foreign_nonempty_folder(tmp_path):
    "A folder that is not a previous generator output is never cleared."
    from ditgaze.data import DataError
    from ditgaze.synth_data import DataConfig, SplitConfig, generate
    out = tmp_path / "out"; out.mkdir(); (out / "stray.txt").write_text("x")
    cfg = DataConfig(image_size=16, workers=1, train=SplitConfig(subjects=1, frames=1, images=0, cameras_per_frame=1),
                     test=SplitConfig(subjects=1, images=2), domains={})
    with pytest.raises(DataError, match="out: not empty and not a previous generator output"): generate(cfg, out, quiet=True)
    assert (out / "stray.txt").exists() and list(out.iterdir()) == [out / "stray.txt"]


def test_cli_refuses_foreign_nonempty_folder_in_one_line(tmp_path):
    root = tmp_path / "data"; (root / "synthetic").mkdir(parents=True); (root / "synthetic" / "stray.txt").write_text("x")
    r = _generate(tmp_path, _params(tmp_path, root), tmp_path / "report")
    assert (root / "synthetic" / "stray.txt").exists()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "synthetic: not empty" in r.stderr and "--out" not in r.stderr


BAD = [  # (data section, profile in effect, what the one error line must say)
    ({"image_size": 8}, "default", "key 'data.image_size': must be in 16..512"),
    ({"test": {"images": 7}}, "default", "key 'data.test.images': must be even"),
    ({"imagesize": 64}, "default", "unknown key 'data.imagesize'"),
    ({"train": {"subjects": "many"}}, "default", "key 'data.train.subjects': expected int"),
    ({"domains": {"shift_light": {"light": "sunny"}}}, "default", "key 'data.domains.shift_light.light': expected one of"),
    ({"train": {"images": 36}}, "default", "key 'data.train.frames': set exactly one of frames / images"),
    ({"workers": 0}, "smoke", "key 'profiles.smoke.data.workers': must be >= 1"),     # the section is fine, the profile on top is not
]


@pytest.mark.parametrize("data, profile, message", BAD, ids=[b[2].split("'")[1] for b in BAD])
def test_bad_params_name_file_and_key(tmp_path, data, profile, message):
    p = _params(tmp_path, tmp_path / "data", profile, **data)
    if profile == "smoke":                                                 # the bad value comes from the profile's override
        d = yaml.safe_load(p.read_text()); d["data"]["workers"] = 1; d["profiles"]["smoke"]["data"]["workers"] = 0
        p.write_text(yaml.safe_dump(d, sort_keys=False))
    r = _generate(tmp_path, p, tmp_path / "report")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith("ditgaze generate: error: ") and message in lines[0] and str(p) in lines[0], lines[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "report").exists()


_RENDER_ONE = """
import hashlib, numpy as np, torch
from ditgaze.synth_data import DataConfig, _render_task
cfg = DataConfig()
arrays, _ = _render_task((cfg, "test", cfg.test, 0))        # what a `generate` worker renders for the first test subject
print(torch.backends.cpu.get_cpu_capability())
for k, v in sorted(arrays.items()): print(k, hashlib.md5(np.ascontiguousarray(v).tobytes()).hexdigest())
"""

def test_same_bytes_with_avx2_and_avx512():
    """The data are the same bytes on any x86 CPU: one default-profile test subject (40 images) rendered with torch's AVX2 kernels
    and with its AVX-512 kernels. (float32 atan2 and pow put the last bit differently on the two, which flipped a pixel here.)"""
    def render(**env):
        r = subprocess.run([sys.executable, "-c", _RENDER_ONE], capture_output=True, text=True, env={**os.environ, **env})
        assert r.returncode == 0, r.stderr[-2000:]
        cap, *rows = r.stdout.split("\n")
        return cap, rows
    cap, own = render()
    if cap != "AVX512": pytest.skip(f"this CPU runs torch's {cap} kernels, not AVX512: nothing to compare the AVX2 kernels with")
    cap2, avx2 = render(ATEN_CPU_CAPABILITY="avx2")
    assert cap2 == "AVX2"
    assert [r for r in own if r.startswith("face_patch")] and own == avx2
