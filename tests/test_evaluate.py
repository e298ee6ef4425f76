"""`ditgaze evaluate references` and `ditgaze report` end to end on a tiny data set (write_subject) and tiny UNTRAINED
test-only estimator checkpoints: files and their content, determinism, errors that name the file, precomputed rows."""
import csv, json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ditgaze.cli import main
from ditgaze.config import ConfigError, load_params, to_dict
from ditgaze.data import DITGAZE_SCHEMA, DataError, write_subject
from ditgaze.estimator_training import EstimatorConfig, net_spec
from ditgaze.estimators import build_net, save_estimator
from ditgaze.geometry import euler_to_matrix
from ditgaze.evaluate import EvaluateConfig, EvaluateError, evaluate_group, precomputed_predictor, report

S = 32  # image size of the fixture
ROOT = Path(__file__).resolve().parents[1]
DITGAZE = Path(sys.executable).parent / "ditgaze"
SPLITS = {"train": (2, 4), "test": (2, 6), "shift_light": (1, 4)}   # split: (subjects, images each); train has no pairs file
REFS = ["copy_input", "mean_face", "ground_truth"]


def toy_arrays(n, seed, tint_seed):
    "One subject: a dark disk in the eye strip moves with the gaze, a blob with the head pose; a per-subject tint; grey outside a box head mask."
    g = np.random.default_rng(seed)
    gaze, head = (g.random((n, 2)) - 0.5) * 0.8, (g.random((n, 2)) - 0.5) * 0.6
    yy, xx = np.mgrid[:S, :S].astype(np.float32)
    img = np.broadcast_to(np.random.default_rng(tint_seed).random(3) * 0.5 + 0.4, (n, S, S, 3)).copy()
    cy, cx = S * (0.375 + 0.1 * gaze[:, 0]), S * (0.5 + 0.3 * gaze[:, 1])
    hy, hx = S * (0.75 + 0.2 * head[:, 0]), S * (0.5 + 0.4 * head[:, 1])
    dark = ((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2 < (S / 12) ** 2) | \
           ((yy - hy[:, None, None]) ** 2 + (xx - hx[:, None, None]) ** 2 < (S / 8) ** 2)
    img[dark] = 0.05
    mask = np.zeros((n, S, S), np.uint8); mask[:, 2:30, 4:28] = 1
    img[mask == 0] = 0.5
    dims = {"N": n, "H": S, "W": S, "E": 3, "P": 4}
    a = {k: np.zeros([dims[p] if isinstance(p, str) else p for p in v.shape], v.dtype) for k, v in DITGAZE_SCHEMA.items()}
    a["face_patch"] = (img[..., ::-1] * 255).round().astype(np.uint8)       # BGR
    a["head_mask"] = mask; a["left_eye_mask"][:, 12, 8:16] = 1; a["right_eye_mask"][:, 12, 16:24] = 1
    a["pitchyaw"], a["face_head_pose"], a["pitchyaw_head"] = gaze.astype(np.float32), head.astype(np.float32), gaze.astype(np.float32)
    a["w2c_Rmat"] = euler_to_matrix(torch.tensor(head[:, 0]), torch.tensor(head[:, 1])).numpy().astype(np.float32)   # the gaze sweep's head frame
    a["facial_landmarks"][:, 17:27, 1] = 8.0                                # the brows' row: the colour metric's face region starts there
    return a


def write_data(root: Path, splits=SPLITS):
    for k, (split, (ns, n)) in enumerate(splits.items()):
        rows = ["subject,input_index,target_index"]
        for s in range(ns):
            name = f"{split}{s:02d}"
            write_subject(root / split / f"{name}.h5", toy_arrays(n, 10 * k + s, 100 * k + s),
                          {"subject": name, "split": split, "domain": split, "image_size": S, "generator": "toy", "seed": 0})
            rows += [f"{name},{i},{i + n // 2}" for i in range(n // 2)]
        if split != "train": (root / f"pairs_{split}.csv").write_text("\n".join(rows) + "\n")


def write_estimators(folder: Path, size=S):
    "UNTRAINED nets saved as checkpoints: test-only wiring, never a reported number."
    ecfg = EstimatorConfig(image_size=size, face_size=16, eye_size=[8, 24], id_size=16, id_dim=8)
    for role in ("gaze_eval", "identity"):
        torch.manual_seed(0)
        save_estimator(folder / f"{role}.pt", build_net(dict(net_spec(ecfg, role), widths=[4, 8])), {"note": "untrained test fixture"})


def eval_cfg(tmp: Path, **over) -> EvaluateConfig:
    return EvaluateConfig(**{**dict(dataset=str(tmp / "data"), estimators_dir=str(tmp / "est"), runs_dir=str(tmp / "runs"), batch_size=4,
                                    out_dir=str(tmp / "reports/eval"), speed_dir=str(tmp / "reports/speed"),
                                    metrics_dir=str(tmp / "reports/metrics"), tables_dir=str(tmp / "reports/tables")), **over})


def write_params(tmp: Path, **over) -> Path:
    "A params file for the stages: the fixture's `evaluate` section (with `over` applied), no runs, one thread on the CPU."
    d = {**to_dict(eval_cfg(tmp)), **over}
    p = tmp / "params.yaml"
    p.write_text(yaml.safe_dump({"profile": "default", "profiles": {"default": {}},
                                 "run": {"device": "cpu", "num_threads": 1}, "runs": {}, "evaluate": d}, sort_keys=False))
    return p


def ditgaze(*args, params: Path) -> int:
    "A stage in this process, errors raised (--debug)."
    return main([*args, "--params", str(params), "--no-progress", "--debug"])


@pytest.fixture
def stage(tmp_path):
    write_data(tmp_path / "data"); write_estimators(tmp_path / "est")
    return tmp_path


def test_references_and_report_write_metrics_pairs_and_tables(stage):
    tmp = stage
    p = write_params(tmp)
    assert ditgaze("evaluate", "references", params=p) == 0
    assert ditgaze("report", params=p) == 0
    for split, (ns, n) in (("test", (2, 6)), ("shift_light", (1, 4))):
        k = ns * n // 2                                                       # pairs of the split
        grp = json.loads((tmp / f"reports/eval/references/{split}.json").read_text())
        assert grp["group"] == "references" and grp["split"] == split and grp["n_pairs"] == k and list(grp["rows"]) == REFS
        assert "fps" not in json.dumps(grp)                                  # timings never in the DVC-hashed file
        speed = json.loads((tmp / f"reports/speed/references/{split}.json").read_text())
        assert list(speed["rows"]) == REFS and speed["rows"]["copy_input"]["fps"]["value"] is None   # reference rows make no images
        rep = json.loads((tmp / f"reports/metrics/{split}.json").read_text())
        assert rep["n_pairs"] == k and rep["split"] == split and list(rep["rows"]) == REFS and "speed" not in rep
        g, c, m = (rep["rows"][r] for r in ("ground_truth", "copy_input", "mean_face"))
        assert g["ssim"]["mean"] == pytest.approx(1.0, abs=1e-6) and g["psnr"]["mean"] == pytest.approx(80.0)
        assert g["gaze_error"]["mean"] < 1e-3 and g["identity"]["mean"] == pytest.approx(100.0, abs=1e-4)
        assert g["color_face"]["mean"] == pytest.approx(0.0, abs=1e-6) and g["fid"]["value"] == pytest.approx(0.0, abs=1e-6)
        assert c["gaze_error"]["mean"] > 0 and c["psnr"]["mean"] < 80 and c["ssim"]["mean"] < 1
        assert m["color_face"]["mean"] > 1                                   # the mean training face has the wrong tint
        assert rep["estimator_floor_gaze_deg"] == pytest.approx(g["gaze_error_to_label"]["mean"])
        assert g["lpips"]["value"] is None and "unavailable" in g["lpips"]["reason"]
        assert "not Inception" in c["fid"]["features"] and c["fid"]["n_real"] == k
        with open(tmp / f"reports/eval/references/{split}_pairs.csv") as fh: rows = list(csv.DictReader(fh))
        assert len(rows) == 3 * k and [r["row"] for r in rows[::k]] == REFS and rows[0]["subject"] == f"{split}00"
        md = (tmp / f"reports/tables/{split}.md").read_text()
        assert "**Synthetic data**" in md and "not ETH-XGaze" in md and "| ground truth (reference: ceiling) |" in md
        assert "| copy input (reference: floor) |" in md and "| mean face (reference: a generic face) |" in md
        assert "FID features: evaluation gaze estimator features" in md and "LPIPS: LPIPS unavailable" in md
        for ax in ("follow_yaw", "follow_pitch"):                             # the gaze sweep: copy input never moves and is the input
            # its readings are of the same image in batches of other sizes: float32 readings agree to ~1e-5 deg (AVX-512
            # kernels change the last bits with the batch), so the slope over tens of degrees of requests is ~1e-7 from 0
            assert c[ax]["value"] == pytest.approx(0.0, abs=1e-6) and c[ax]["r2"] is None and c[ax]["violations"] == 0
            assert c[ax]["identity"] == pytest.approx(100.0, abs=1e-4) and c[ax]["n_inputs"] == ns and g[ax]["value"] is None
        assert "Gaze sweep (" in md and "| copy input (reference: floor) | 0.00 | n/a | 0.00 | 0.0 | 100.0 | 0.00 | n/a |" in md
    assert sorted(f.name for f in (tmp / "reports/metrics").iterdir()) == ["shift_light.json", "test.json"]   # train has no pairs file


def test_stage_is_deterministic(stage):
    "The declared outputs are the same bytes every run (evaluation and report twice)."
    tmp = stage
    p = write_params(tmp, splits=["shift_light"])
    files = ("reports/eval/references/shift_light.json", "reports/eval/references/shift_light_pairs.csv",
             "reports/metrics/shift_light.json", "reports/tables/shift_light.md")
    ditgaze("evaluate", "references", params=p); ditgaze("report", params=p)
    first = [(tmp / f).read_bytes() for f in files]
    ditgaze("evaluate", "references", params=p); ditgaze("report", params=p)
    assert first == [(tmp / f).read_bytes() for f in files]
    assert not (tmp / "reports/eval/references/test.json").exists()          # `splits` restricts the evaluation


@pytest.mark.parametrize("missing", ["gaze_eval.pt", "identity.pt"])
def test_missing_estimator_checkpoint_names_the_file(stage, missing):
    tmp = stage
    (tmp / "est" / missing).unlink()
    with pytest.raises(EvaluateError, match=f"est/{missing}: {missing[:-3]} estimator checkpoint not found"):
        ditgaze("evaluate", "references", params=write_params(tmp))
    assert not (tmp / "reports").exists()                                         # refused before writing anything


def test_stage_process_fails_with_one_line(stage):
    tmp = stage
    (tmp / "est" / "gaze_eval.pt").unlink()
    r = subprocess.run([str(DITGAZE), "evaluate", "references", "--params", str(write_params(tmp)), "--no-progress"],
                       capture_output=True, text=True, cwd=tmp)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith("ditgaze evaluate: error: ") and "gaze_eval.pt: gaze_eval estimator checkpoint not found" in lines[0]


def test_bad_inputs_are_named(stage):
    tmp = stage
    with pytest.raises(DataError, match="data/nope/train"):                      # the mean face needs the training split
        ditgaze("evaluate", "references", params=write_params(tmp, dataset=str(tmp / "data/nope")))
    with pytest.raises(EvaluateError, match="runs/dit/last.pt: checkpoint of run 'dit' not found"):
        ditgaze("evaluate", "dit", params=write_params(tmp))
    with pytest.raises(ConfigError, match="unknown key 'evaluate.modles'"):
        ditgaze("evaluate", "references", params=write_params(tmp, modles=[]))
    with pytest.raises(ConfigError, match="key 'evaluate.fit.steps': must be >= 0"):
        ditgaze("evaluate", "references", params=write_params(tmp, fit={"steps": -1}))
    with pytest.raises(EvaluateError, match="no evaluation files \\(run `ditgaze evaluate references` first\\)"):
        ditgaze("report", params=write_params(tmp))
    (tmp / "data/pairs_test.csv").write_text("subject,input_index,target_index\ntest00,0,9\n")
    with pytest.raises(DataError, match="pairs_test.csv:2: target_index 9 out of range"):
        ditgaze("evaluate", "references", params=write_params(tmp))


def test_image_size_mismatch(stage):
    tmp = stage
    write_estimators(tmp / "est", size=64)
    with pytest.raises(EvaluateError, match="key 'face_patch': images are 32 px but the estimators .*gaze_eval.pt\\) take 64 px"):
        ditgaze("evaluate", "references", params=write_params(tmp))


def test_precomputed_folder_row(stage):
    "A folder of predicted images (one PNG per pair) is a group of its own; here the targets themselves: ground-truth numbers."
    from PIL import Image
    from ditgaze.data import SubjectDataset, protocol_pairs
    tmp = stage
    ds = SubjectDataset(tmp / "data/shift_light"); pairs = protocol_pairs(ds, tmp / "data/pairs_shift_light.csv")
    out = tmp / "preds"; out.mkdir()
    for k, (_, j) in enumerate(pairs):
        d = ds[int(j)]; img = torch.where(d["head_mask"] > 0.5, d["image"], torch.ones_like(d["image"]))
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(out / f"{k:04d}.png")
    ds.close()
    cfg = eval_cfg(tmp, splits=["shift_light"])
    ditgaze("evaluate", "references", params=write_params(tmp, splits=["shift_light"]))
    evaluate_group("saved", [precomputed_predictor(out, "saved")], cfg, progress=False)
    report(cfg, ["references", "saved"])
    rep = json.loads((tmp / "reports/metrics/shift_light.json").read_text())
    assert list(rep["rows"]) == [*REFS, "saved"]
    saved = rep["rows"]["saved"]
    assert saved["kind"] == "precomputed" and saved["psnr"]["mean"] == pytest.approx(80.0) and saved["gaze_error"]["mean"] < 1e-3
    assert "| saved |" in (tmp / "reports/tables/shift_light.md").read_text()
    (out / "0000.png").unlink()
    with pytest.raises(EvaluateError, match="predictions 'saved': 1 images for 2 pairs"):
        evaluate_group("saved", [precomputed_predictor(out, "saved")], cfg, progress=False)


@pytest.mark.parametrize("profile", ["default", "smoke", "gpu"])
def test_params_section_loads_for_every_profile(profile):
    cfg = load_params(ROOT / "params.yaml", {"evaluate": EvaluateConfig}, profile)["evaluate"]
    assert cfg.lpips_vgg_weights is None or Path(cfg.lpips_vgg_weights).suffix
    assert cfg.fit.steps > 0                                                  # every profile reports the fitted rows
    assert cfg.out_dir == "reports/eval" and cfg.metrics_dir == "reports/metrics"   # where dvc.yaml declares the stages' files
