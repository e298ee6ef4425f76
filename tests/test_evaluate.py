"The `evaluate` stage end to end on a tiny data set (write_subject) and tiny UNTRAINED test-only estimator checkpoints."
import csv, json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ditgaze.config import ConfigError
from ditgaze.data import DITGAZE_SCHEMA, DataError, write_subject
from ditgaze.estimators import EstimatorConfig, build_net, net_spec, save_estimator
from ditgaze.evaluate import EvaluateConfig, EvaluateError, main
from ditgaze.config import to_dict

S = 32  # image size of the fixture
ROOT = Path(__file__).resolve().parents[1]


def toy_arrays(n, seed):
    "One subject: a dark disk in the eye strip moves with the gaze; grey outside a box head mask."
    g = np.random.default_rng(seed)
    gaze, head = (g.random((n, 2)) - 0.5) * 0.8, (g.random((n, 2)) - 0.5) * 0.6
    yy, xx = np.mgrid[:S, :S].astype(np.float32)
    img = np.broadcast_to(g.random(3) * 0.5 + 0.4, (n, S, S, 3)).copy()
    cy, cx = S * (0.375 + 0.1 * gaze[:, 0]), S * (0.5 + 0.3 * gaze[:, 1])
    img[(yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2 < (S / 12) ** 2] = 0.05
    mask = np.zeros((n, S, S), np.uint8); mask[:, 2:30, 4:28] = 1
    img[mask == 0] = 0.5
    dims = {"N": n, "H": S, "W": S, "E": 3, "P": 4}
    a = {k: np.zeros([dims[p] if isinstance(p, str) else p for p in v.shape], v.dtype) for k, v in DITGAZE_SCHEMA.items()}
    a["face_patch"] = (img[..., ::-1] * 255).round().astype(np.uint8)
    a["head_mask"] = mask
    a["pitchyaw"], a["face_head_pose"], a["pitchyaw_head"] = gaze.astype(np.float32), head.astype(np.float32), gaze.astype(np.float32)
    return a


def write_data(root: Path, splits={"test": (2, 6), "shift_light": (1, 4)}):
    for k, (split, (ns, n)) in enumerate(splits.items()):
        rows = ["subject,input_index,target_index"]
        for s in range(ns):
            name = f"{split}{s:02d}"
            write_subject(root / split / f"{name}.h5", toy_arrays(n, 10 * k + s),
                          {"subject": name, "split": split, "domain": split, "image_size": S, "generator": "toy", "seed": 0})
            rows += [f"{name},{i},{i + n // 2}" for i in range(n // 2)]
        (root / f"pairs_{split}.csv").write_text("\n".join(rows) + "\n")
    (root / "train").mkdir(exist_ok=True)                                         # no pairs file: not evaluated


def write_estimators(folder: Path, size=S):
    "UNTRAINED nets saved as checkpoints: test-only wiring, never a reported number."
    ecfg = EstimatorConfig(image_size=size, face_size=16, eye_size=[8, 24], id_size=16, id_dim=8)
    for role in ("gaze_eval", "identity"):
        torch.manual_seed(0)
        save_estimator(folder / f"{role}.pt", build_net(dict(net_spec(ecfg, role), widths=[4, 8])), {"note": "untrained test fixture"})


def write_params(tmp: Path, **over) -> Path:
    cfg = EvaluateConfig(dataset=str(tmp / "data"), estimators_dir=str(tmp / "est"), batch_size=4,
                         metrics_dir=str(tmp / "reports/metrics"), tables_dir=str(tmp / "reports/tables"), speed_dir=str(tmp / "reports/speed"))
    d = {**to_dict(cfg), **over}
    p = tmp / "params.yaml"
    p.write_text(yaml.safe_dump({"profile": "smoke", "profiles": {"smoke": {}},
                                 "run": {"seed": 0, "device": "cpu", "deterministic": True, "num_threads": 1}, "evaluate": d}, sort_keys=False))
    return p


@pytest.fixture
def stage(tmp_path):
    write_data(tmp_path / "data"); write_estimators(tmp_path / "est")
    return tmp_path


def test_cli_writes_metrics_pairs_and_tables(stage):
    tmp = stage
    main(["--params", str(write_params(tmp)), "--no-progress"])
    for split, n in (("test", 6), ("shift_light", 2)):
        rep = json.loads((tmp / f"reports/metrics/{split}.json").read_text())
        assert rep["n_pairs"] == n and rep["split"] == split and "not ETH-XGaze" in rep["data"]
        assert list(rep["models"]) == ["copy_input", "ground_truth"]
        g, c = rep["models"]["ground_truth"], rep["models"]["copy_input"]
        assert g["ssim"]["mean"] == pytest.approx(1.0, abs=1e-6) and g["psnr"]["mean"] == pytest.approx(80.0)
        assert g["gaze_error"]["mean"] < 1e-3 and c["gaze_error"]["mean"] > 0 and c["psnr"]["mean"] < 80
        assert rep["estimator_floor_gaze_deg"] == pytest.approx(g["gaze_error_to_label"]["mean"])
        assert g["lpips"]["value"] is None and "unavailable" in g["lpips"]["reason"]
        assert "not Inception" in c["fid"]["features"] and c["fid"]["n_real"] == n
        with open(tmp / f"reports/metrics/{split}_pairs.csv") as fh: rows = list(csv.DictReader(fh))
        assert len(rows) == 2 * n and sum(r["model"] == "copy_input" for r in rows) == n
        md = (tmp / f"reports/tables/{split}.md").read_text()
        assert "**Synthetic data**" in md and "not ETH-XGaze" in md and "| ground truth (reference: ceiling) |" in md
        assert "FID features: evaluation gaze estimator features" in md and "LPIPS: LPIPS unavailable" in md
    assert not (tmp / "reports/metrics/train.json").exists()


def test_stage_is_deterministic(stage):
    tmp = stage
    p = write_params(tmp, splits=["shift_light"])
    main(["--params", str(p), "--no-progress"])
    first = [(tmp / f).read_bytes() for f in ("reports/metrics/shift_light.json", "reports/metrics/shift_light_pairs.csv", "reports/tables/shift_light.md")]
    main(["--params", str(p), "--no-progress"])
    assert first == [(tmp / f).read_bytes() for f in ("reports/metrics/shift_light.json", "reports/metrics/shift_light_pairs.csv", "reports/tables/shift_light.md")]


@pytest.mark.parametrize("missing", ["gaze_eval.pt", "identity.pt"])
def test_missing_estimator_checkpoint_names_the_file(stage, missing):
    tmp = stage
    (tmp / "est" / missing).unlink()
    with pytest.raises(EvaluateError, match=f"est/{missing}: .* estimator checkpoint not found"):
        main(["--params", str(write_params(tmp)), "--no-progress"])
    assert not (tmp / "reports").exists()                                         # refused before writing anything


def test_cli_process_fails_with_message(stage):
    tmp = stage
    (tmp / "est" / "gaze_eval.pt").unlink()
    r = subprocess.run([sys.executable, "-m", "ditgaze.evaluate", "--params", str(write_params(tmp)), "--no-progress"],
                       capture_output=True, text=True, cwd=tmp)
    assert r.returncode != 0 and "gaze_eval.pt: gaze_eval estimator checkpoint not found" in r.stderr


def test_bad_inputs_are_named(stage):
    tmp = stage
    with pytest.raises(EvaluateError, match="data/nope: data set folder not found"):
        main(["--params", str(write_params(tmp, dataset=str(tmp / "data/nope"))), "--no-progress"])
    with pytest.raises(ConfigError, match="missing \\['ground_truth'\\]"):
        main(["--params", str(write_params(tmp, models=["copy_input"])), "--no-progress"])
    with pytest.raises(EvaluateError, match="checkpoint runs/dit/last.pt not found"):
        main(["--params", str(write_params(tmp, models=["copy_input", "ground_truth", {"dit": "runs/dit/last.pt"}])), "--no-progress"])
    with pytest.raises(ConfigError, match="unknown key 'evaluate.modles'"):
        main(["--params", str(write_params(tmp, modles=[])), "--no-progress"])
    (tmp / "data/pairs_test.csv").write_text("subject,input_index,target_index\ntest00,0,9\n")
    with pytest.raises(DataError, match="pairs_test.csv:2: target_index 9 out of range"):
        main(["--params", str(write_params(tmp)), "--no-progress"])


def test_image_size_mismatch(stage):
    tmp = stage
    write_estimators(tmp / "est", size=64)
    with pytest.raises(EvaluateError, match="images are 32 px but the estimators .* take 64 px"):
        main(["--params", str(write_params(tmp)), "--no-progress"])


def test_precomputed_folder_row(stage):
    "A folder of predicted images (one PNG per pair) adds a row; here the targets themselves: ground-truth numbers."
    from PIL import Image
    from ditgaze.data import SubjectDataset, protocol_pairs
    tmp = stage
    ds = SubjectDataset(tmp / "data/shift_light"); pairs = protocol_pairs(ds, tmp / "data/pairs_shift_light.csv")
    out = tmp / "preds"; out.mkdir()
    for k, (_, j) in enumerate(pairs):
        d = ds[int(j)]; img = torch.where(d["head_mask"] > 0.5, d["image"], torch.ones_like(d["image"]))
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(out / f"{k:04d}.png")
    p = write_params(tmp, splits=["shift_light"], models=["copy_input", "ground_truth", {"saved": str(out)}])
    main(["--params", str(p), "--no-progress"])
    rep = json.loads((tmp / "reports/metrics/shift_light.json").read_text())
    assert rep["models"]["saved"]["kind"] == "precomputed" and rep["models"]["saved"]["psnr"]["mean"] == pytest.approx(80.0)


def test_params_section_loads_for_every_profile():
    from ditgaze.config import load_section
    for prof in ("smoke", "default", "gpu"):
        cfg = load_section(EvaluateConfig, "evaluate", ROOT / "params.yaml", prof)
        assert cfg.lpips_vgg_weights is None or Path(cfg.lpips_vgg_weights).suffix
        assert "copy_input" in cfg.models and "ground_truth" in cfg.models
