"The `generate` stage (ditgaze.synth_data) end to end: files, schema, determinism, errors."
import json, subprocess, sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from ditgaze.data import validate_subject_file

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def _generate(tmp_path, out, params_text=None, *extra):
    p = tmp_path / "params.yaml"
    p.write_text(params_text if params_text is not None else PARAMS.read_text())
    return subprocess.run([sys.executable, "-m", "ditgaze.synth_data", "--params", str(p), "--profile", "smoke",
                           "--out", str(out), "--report", str(tmp_path / "report"), *extra],
                          capture_output=True, text=True, cwd=tmp_path)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    "Two smoke-profile runs into different folders (the second in-process, workers=1), and the first's result."
    tmp = tmp_path_factory.mktemp("gen")
    r1 = _generate(tmp, tmp / "a")
    assert r1.returncode == 0, r1.stderr[-2000:]
    d = yaml.safe_load(PARAMS.read_text()); d["profiles"]["smoke"]["data"]["workers"] = 1
    r2 = _generate(tmp, tmp / "b", yaml.safe_dump(d))
    assert r2.returncode == 0, r2.stderr[-2000:]
    return tmp, r1


def test_smoke_files_validate(smoke_runs):
    tmp, r = smoke_runs
    man = json.loads((tmp / "a" / "manifest.json").read_text())
    h5 = sorted(f for f in man["files"] if f.endswith(".h5"))
    assert len([f for f in h5 if f.startswith("train/")]) == 4 and len([f for f in h5 if f.startswith("test/")]) == 2
    assert {f.split("/")[0] for f in h5} == {"train", "test", "shift_light", "shift_identity"}
    for f in h5:
        info = validate_subject_file(tmp / "a" / f, full=True)
        assert info.image_size == 64
    assert (tmp / "report" / "contact_sheet.png").stat().st_size > 1000
    assert "img/s" in r.stdout


def test_smoke_byte_identical_across_runs_and_workers(smoke_runs):
    tmp, _ = smoke_runs
    files = sorted(p.relative_to(tmp / "a") for p in (tmp / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp / "b") for p in (tmp / "b").rglob("*") if p.is_file())
    ma = json.loads((tmp / "a" / "manifest.json").read_text()); mb = json.loads((tmp / "b" / "manifest.json").read_text())
    assert ma["files"] == mb["files"]                                      # same md5 for every file
    for f in files:
        if f.name != "manifest.json": assert (tmp / "a" / f).read_bytes() == (tmp / "b" / f).read_bytes(), f


def test_smoke_labels_and_pairs(smoke_runs):
    tmp, _ = smoke_runs
    with h5py.File(tmp / "a" / "test" / "test_000.h5") as f:
        n = f["face_patch"].shape[0]
        R = f["w2c_Rmat"][:]; py_h = f["pitchyaw_head"][:]; py_n = f["pitchyaw"][:]
        eyes = f["left_eye_mask"][:].sum((1, 2)) + f["right_eye_mask"][:].sum((1, 2))
        assert (f["head_mask"][:].mean((1, 2)) > 0.3).all() and (eyes > 0).all()
    v = lambda py: np.stack([-np.cos(py[:, 0]) * np.sin(py[:, 1]), -np.sin(py[:, 0]), -np.cos(py[:, 0]) * np.cos(py[:, 1])], 1)
    np.testing.assert_allclose((R @ v(py_h)[..., None])[..., 0], v(py_n), atol=1e-5)   # pitchyaw = R_n R_h g_head
    rows = (tmp / "a" / "pairs_test.csv").read_text().splitlines()
    assert rows[0] == "subject,input_index,target_index" and len(rows) == 1 + 2 * n // 2
    for row in rows[1:]:
        s, i, t = row.split(","); assert 0 <= int(i) < n // 2 <= int(t) < n


def _main_error(tmp_path, params_text, out):
    "Run the CLI entry in-process; return the SystemExit / exception text."
    from ditgaze.synth_data import main
    p = tmp_path / "params.yaml"; p.write_text(params_text)
    with pytest.raises((SystemExit, FileExistsError)) as e:
        main(["--params", str(p), "--profile", "smoke", "--out", str(out), "--report", str(tmp_path / "report")])
    return str(e.value)


def test_refuses_foreign_nonempty_folder(tmp_path):
    out = tmp_path / "out"; out.mkdir(); (out / "stray.txt").write_text("x")
    assert "not empty" in _main_error(tmp_path, PARAMS.read_text(), out)
    assert (out / "stray.txt").exists()


def test_cli_bad_param_exits_nonzero(tmp_path):
    d = yaml.safe_load(PARAMS.read_text()); d["profiles"]["smoke"]["data"]["image_size"] = 8
    r = _generate(tmp_path, tmp_path / "out", yaml.safe_dump(d))
    assert r.returncode != 0 and "key 'data.image_size'" in r.stderr and "params.yaml" in r.stderr, r.stderr[-800:]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["data"]["test"].update(images=7), "key 'data.test.images': must be even"),
    (lambda d: d["data"].update(imagesize=64), "unknown key 'data.imagesize'"),
    (lambda d: d["data"]["train"].update(subjects="many"), "key 'data.train.subjects': expected int"),
    (lambda d: d["data"]["domains"]["shift_light"].update(light="sunny"), "key 'data.domains.shift_light.light'"),
    (lambda d: d["data"]["train"].update(images=36), "key 'data.train': set exactly one of frames / images"),
])
def test_bad_params_name_file_and_key(tmp_path, edit, message):
    d = yaml.safe_load(PARAMS.read_text()); d["profiles"]["smoke"] = {}; edit(d)
    msg = _main_error(tmp_path, yaml.safe_dump(d), tmp_path / "out")
    assert message in msg and "params.yaml" in msg, msg
    assert not (tmp_path / "out").exists()
