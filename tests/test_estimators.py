"The `estimators` stage end to end on a tiny data set written with `write_subject`: CLI, files, errors, determinism."
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ditgaze.data import DITGAZE_SCHEMA, write_subject
from ditgaze.estimators import (EstimatorConfig, EstimatorError, NetConfig, load_estimator, main, net_spec, ROLES)
from ditgaze.config import ConfigError, from_dict, to_dict

S = 32  # image size of the fixture


def toy_subject(n, seed, subject):
    "Arrays of one subject: gaze moves a dark disk in the eye strip, head pose a blob below; the subject sets the tint."
    g = np.random.default_rng(seed)
    gaze, head = (g.random((n, 2)) - 0.5) * 0.8, (g.random((n, 2)) - 0.5) * 0.6
    yy, xx = np.mgrid[:S, :S].astype(np.float32)
    tint = np.random.default_rng(1000 + subject).random(3) * 0.5 + 0.4
    img = np.broadcast_to(tint, (n, S, S, 3)).copy()
    cy, cx = S * (0.375 + 0.1 * gaze[:, 0]), S * (0.5 + 0.3 * gaze[:, 1])
    hy, hx = S * (0.75 + 0.2 * head[:, 0]), S * (0.5 + 0.4 * head[:, 1])
    dark = ((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2 < (S / 12) ** 2) | \
           ((yy - hy[:, None, None]) ** 2 + (xx - hx[:, None, None]) ** 2 < (S / 8) ** 2)
    img[dark] = 0.05
    dims = {"N": n, "H": S, "W": S, "E": 3, "P": 4}
    a = {k: np.zeros([dims[p] if isinstance(p, str) else p for p in v.shape], v.dtype) for k, v in DITGAZE_SCHEMA.items() if v.required}
    a["face_patch"] = (img[..., ::-1] * 255).round().astype(np.uint8)       # BGR
    a["head_mask"][:] = 1
    a["left_eye_mask"][:, 12, 8:16] = 1; a["right_eye_mask"][:, 12, 16:24] = 1
    a["pitchyaw"], a["face_head_pose"] = gaze.astype(np.float32), head.astype(np.float32)
    return a


def write_dataset(root: Path, splits={"train": (4, 24), "test": (3, 12), "shift_light": (2, 8)}):
    for k, (split, (ns, n)) in enumerate(splits.items()):
        for s in range(ns):
            name = f"{split}{s:02d}"
            write_subject(root / split / f"{name}.h5", toy_subject(n, 100 * k + s, 10 * k + s),
                          {"subject": name, "split": split, "domain": split, "image_size": S, "generator": "toy", "seed": 0})


def tiny_cfg(tmp: Path, epochs=1) -> EstimatorConfig:
    return EstimatorConfig(dataset=str(tmp / "data"), out_dir=str(tmp / "runs"), metrics=str(tmp / "reports" / "estimators.json"),
                           image_size=S, face_size=16, eye_size=[8, 24], id_size=16, id_dim=8, batch_size=16, id_pairs=200,
                           gaze_loss=NetConfig("vgg", [4, 8], 1, epochs, 3e-3), gaze_eval=NetConfig("resnet", [4, 8], 2, epochs, 3e-3),
                           identity=NetConfig("resnet", [4, 8], 3, epochs, 3e-3))


def write_params(tmp: Path, cfg: EstimatorConfig) -> Path:
    p = tmp / "params.yaml"
    p.write_text(yaml.safe_dump({"profile": "smoke", "profiles": {"smoke": {}},
                                 "run": {"seed": 0, "device": "cpu", "deterministic": True, "num_threads": 1},
                                 "estimators": to_dict(cfg)}, sort_keys=False))
    return p


@pytest.fixture
def stage(tmp_path):
    write_dataset(tmp_path / "data")
    cfg = tiny_cfg(tmp_path)
    return tmp_path, cfg, write_params(tmp_path, cfg)


def test_cli_end_to_end(stage, capsys):
    tmp, cfg, params = stage
    main(["--params", str(params), "--no-progress"])
    m = json.loads(Path(cfg.metrics).read_text())
    assert list(m["splits"]) == ["train", "test", "shift_light"]              # train fit, test first, then shifted domains
    for split in ("test", "shift_light"):
        r = m["splits"][split]
        for role in ("gaze_loss", "gaze_eval"):
            assert np.isfinite(r[role]["gaze_deg_mean"]) and r[role]["gaze_deg_median"] >= 0 and np.isfinite(r[role]["head_deg_mean"])
        assert 0.0 <= r["identity"]["roc_auc"] <= 1.0 and 0.5 <= r["identity"]["acc_best_threshold"] <= 1.0
    assert m["splits"]["test"]["n_subjects"] == 3 and m["splits"]["test"]["n_images"] == 36
    assert m["floor"]["gaze_eval_test_gaze_deg"] == m["splits"]["test"]["gaze_eval"]["gaze_deg_mean"]
    for role in ROLES:
        p = Path(cfg.out_dir) / f"{role}.pt"
        net = load_estimator(p, "cpu", expect=net_spec(cfg, role))
        assert net.meta["role"] == role and net.meta["train_subjects"] == [f"train{s:02d}" for s in range(4)]
        assert not p.with_name(p.name + ".tmp").exists()
    assert "[estimators] done" in capsys.readouterr().out


def test_cli_deterministic(stage):
    "Same params, same seed: byte-identical metrics and checkpoints (DVC hashes them)."
    tmp, cfg, params = stage
    files = [Path(cfg.metrics)] + [Path(cfg.out_dir) / f"{r}.pt" for r in ROLES]
    main(["--params", str(params), "--no-progress"])
    first = [f.read_bytes() for f in files]
    main(["--params", str(params), "--no-progress"])
    assert [f.read_bytes() for f in files] == first


def test_mismatched_checkpoint_is_refused(stage):
    tmp, cfg, params = stage
    main(["--params", str(params), "--no-progress"])
    p = Path(cfg.out_dir) / "gaze_loss.pt"
    other = tiny_cfg(tmp); other.gaze_loss = NetConfig("vgg", [4, 16], 1, 1, 3e-3)
    with pytest.raises(EstimatorError, match=r"gaze_loss\.pt.*spec key 'widths'"):
        load_estimator(p, expect=net_spec(other, "gaze_loss"))
    with pytest.raises(EstimatorError, match=r"gaze_loss\.pt.*spec key 'role'"):
        load_estimator(p, expect=net_spec(cfg, "gaze_eval"))
    p.write_bytes(p.read_bytes()[:100])                                        # truncated
    with pytest.raises(EstimatorError, match=r"gaze_loss\.pt: not a readable"):
        load_estimator(p)


def test_missing_dataset_names_folder(tmp_path):
    cfg = tiny_cfg(tmp_path)
    params = write_params(tmp_path, cfg)
    with pytest.raises(EstimatorError, match=r"data/train: train split folder not found"):
        main(["--params", str(params), "--no-progress"])


def test_wrong_image_size_names_file(stage):
    tmp, cfg, _ = stage
    cfg.image_size, cfg.face_size = 64, 16
    params = write_params(tmp, cfg)
    with pytest.raises(EstimatorError, match=r"train00\.h5: key 'face_patch': images are 32 px but estimators.image_size is 64"):
        main(["--params", str(params), "--no-progress"])


def test_bad_params_key(tmp_path):
    d = to_dict(tiny_cfg(tmp_path)); d["gaze_eval"]["depth"] = 3
    with pytest.raises(ConfigError, match=r"estimators.gaze_eval.depth"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
    d = to_dict(tiny_cfg(tmp_path)); d["gaze_eval"]["arch"] = "vit"
    with pytest.raises(ConfigError, match=r"estimators.gaze_eval.arch"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
