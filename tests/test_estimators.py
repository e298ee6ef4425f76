"`train_estimators` end to end on a tiny data set written with `write_subject`: files, metrics, errors, determinism, resume."
import json, shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ditgaze.config import ConfigError, DitgazeError, from_dict, to_dict
from ditgaze.data import DITGAZE_SCHEMA, write_subject
from ditgaze.estimator_training import (EstimatorConfig, NetConfig, ROLES, check_train_data, load_split, net_spec, train_estimators,
                                        train_gaze, train_identity)
from ditgaze.estimators import EstimatorError, load_estimator

S = 32  # image size of the fixture
EYES = np.array([[0.4, 0.375], [0.6, 0.375]], np.float32) * S   # the toy's eye centres (image-left first)


def toy_subject(n, seed, subject, eye_geometry=True):
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
    a["facial_landmarks"][:, 36:42], a["facial_landmarks"][:, 42:48] = EYES[0], EYES[1]    # the eye centres are the landmarks' means
    if eye_geometry:   # K = R = I, T = 0, all on the plane z = 1: both pupils project to the disk's centre, both eyeball centres to its rest
        pupil = np.stack([cx, cy], -1).astype(np.float32) + 0.5                            # [n,2] (pixel i spans [i, i+1])
        rest = np.array([0.5, 0.375], np.float32) * S + 0.5
        one = lambda t: np.concatenate([t, np.ones((len(t), 1), np.float32)], 1)
        a["ditgaze_eyeball_centers"] = np.repeat(one(np.repeat(rest[None], n, 0))[:, None], 2, 1)
        a["ditgaze_gaze_target"] = one(pupil)
        a["ditgaze_eyeball_radius"] = np.linalg.norm(pupil - rest, axis=-1).astype(np.float32)
        a["inmat"] = a["w2c_Rmat"] = np.repeat(np.eye(3, dtype=np.float32)[None], n, 0)
    return a


def write_dataset(root: Path, splits={"train": (4, 24), "test": (3, 12), "shift_light": (2, 8)}, eye_geometry=True):
    for k, (split, (ns, n)) in enumerate(splits.items()):
        for s in range(ns):
            name = f"{split}{s:02d}"
            write_subject(root / split / f"{name}.h5", toy_subject(n, 100 * k + s, 10 * k + s, eye_geometry),
                          {"subject": name, "split": split, "domain": split, "image_size": S, "generator": "toy", "seed": 0})


def tiny_cfg(tmp: Path, epochs=1, locator_epochs=0) -> EstimatorConfig:
    """The default networks' kinds at toy size: a strip loss net, a crops evaluation net with eye points, the identity net;
    its eye locator as long as the rest of it (`locator_epochs` 0), unless given its own length."""
    return EstimatorConfig(dataset=str(tmp / "data"), out_dir=str(tmp / "runs"), metrics=str(tmp / "reports" / "estimators.json"),
                           image_size=S, face_size=16, eye_size=[8, 24], eye_crop=[0.25, 0.375], eye_crop_size=[8, 12], locator_size=16,
                           id_size=16, id_dim=8, batch_size=16, id_pairs=200, shift_px=1, locator_epochs=locator_epochs,
                           gaze_loss=NetConfig("vgg", [4, 8], 1, epochs, 3e-3),
                           gaze_eval=NetConfig("resnet", [4, 8], 2, epochs, 3e-3, "crops"),
                           identity=NetConfig("resnet", [4, 8], 3, epochs, 3e-3))


def files(cfg):
    return [Path(cfg.out_dir) / f"{r}.pt" for r in ROLES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "One run of the three networks on the toy data set: (tmp, cfg, metrics, checkpoint bytes)."
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("estimators")
    write_dataset(tmp / "data")
    cfg = tiny_cfg(tmp)
    m = train_estimators(cfg, "cpu", progress=False)
    return tmp, cfg, m, [f.read_bytes() for f in files(cfg)]


def test_end_to_end(trained):
    tmp, cfg, m, _ = trained
    assert list(m["splits"]) == ["train", "test", "shift_light"]              # train fit, test first, then shifted domains
    for split in ("test", "shift_light"):
        r = m["splits"][split]
        for role in ("gaze_loss", "gaze_eval"):
            assert np.isfinite(r[role]["gaze_deg_mean"]) and r[role]["gaze_deg_median"] >= 0 and np.isfinite(r[role]["head_deg_mean"])
        assert {"eye_locator_px_mean", "pupil_px_mean", "eyeball_px_mean"} <= set(r["gaze_eval"])
        assert "eye_locator_px_mean" not in r["gaze_loss"]
        assert 0.0 <= r["identity"]["roc_auc"] <= 1.0 and 0.5 <= r["identity"]["acc_best_threshold"] <= 1.0
    assert m["splits"]["test"]["n_subjects"] == 3 and m["splits"]["test"]["n_images"] == 36
    assert m["train"]["gaze_eval"]["steps"] == 6 and m["train"]["identity"]["n_subjects"] == 4
    assert m["floor"] == {"gaze_eval_test_gaze_deg": m["splits"]["test"]["gaze_eval"]["gaze_deg_mean"],
                          "floor_target_deg": 6.5, "ok": m["floor"]["gaze_eval_test_gaze_deg"] <= 6.5}
    text = json.dumps(m)                                                       # plain data, nothing machine-dependent
    assert json.loads(text) == m and not any(k in text for k in ('"device"', "seconds", '"torch"', '"profile"'))
    assert not Path(cfg.metrics).exists()                                      # writing the metrics is the command line's job
    for role in ROLES:
        net = load_estimator(Path(cfg.out_dir) / f"{role}.pt", "cpu", expect=net_spec(cfg, role))
        assert net.meta["role"] == role and net.meta["train_subjects"] == [f"train{s:02d}" for s in range(4)]
        assert net.meta["history"] == m["train"][role] and net.meta["reports"]["test"] == m["splits"]["test"][role]
        assert not set(net.meta) & {"device", "torch", "profile"}
        parts = ("locator", "reader") if role == "gaze_eval" else ("",)         # the evaluation net (eye crops) trains in two parts, one per process
        assert all((Path(cfg.out_dir) / "train" / (f"{role}_{p}" if p else role) / "last.pt").exists() for p in parts), role
    assert not [p for p in Path(cfg.out_dir).rglob("*") if ".tmp" in p.name]


def test_deterministic(trained):
    "Same config, same seed: byte-identical checkpoints and equal metrics, resumed (finished) or from scratch."
    tmp, cfg, m, first = trained
    assert train_estimators(cfg, "cpu", progress=False) == m                   # the finished runs are resumed, not retrained
    assert [f.read_bytes() for f in files(cfg)] == first
    shutil.rmtree(cfg.out_dir)
    assert train_estimators(cfg, "cpu", progress=False) == m                   # from scratch
    assert [f.read_bytes() for f in files(cfg)] == first


def test_one_process_trains_the_same_networks(trained, tmp_path):
    "workers=2 (the evaluation net in a second process, the default) and workers=1 give the same weights and metrics."
    import dataclasses
    tmp, cfg, m, _ = trained
    cfg1 = dataclasses.replace(cfg, out_dir=str(tmp_path / "runs1"), workers=1)
    m1 = train_estimators(cfg1, "cpu", progress=False)
    joint = lambda d: {**d, "train": {**d["train"], "gaze_eval": {k: v for k, v in d["train"]["gaze_eval"].items() if k != "parts"}}}
    assert cfg.workers == 2 and "parts" in m["train"]["gaze_eval"] and joint(m) == m1   # the same, but for each part's own record
    for f, f1 in zip(files(cfg), files(cfg1)):
        a, b = torch.load(f, weights_only=True)["state_dict"], torch.load(f1, weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f.name


def test_shorter_locator_in_one_or_two_processes(trained, tmp_path):
    "A locator shorter than the reader (the default's shape) trains its own steps; one or two processes give the same weights and metrics."
    import dataclasses
    tmp, _, _, _ = trained
    cfg = dataclasses.replace(tiny_cfg(tmp, epochs=2, locator_epochs=1), out_dir=str(tmp_path / "runs2"))
    cfg1 = dataclasses.replace(cfg, out_dir=str(tmp_path / "runs1"), workers=1)
    m, m1 = train_estimators(cfg, "cpu", progress=False), train_estimators(cfg1, "cpu", progress=False)
    parts = m["train"]["gaze_eval"]["parts"]
    assert (parts["locator"]["steps"], parts["reader"]["steps"], m["train"]["gaze_eval"]["steps"]) == (6, 12, 12)   # 96 images, batch 16
    assert m1 == m                                                             # both train the two parts
    for f, f1 in zip(files(cfg), files(cfg1)):
        a, b = torch.load(f, weights_only=True)["state_dict"], torch.load(f1, weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f.name


def test_resume_after_stop(trained, tmp_path):
    "A run stopped after a few steps and started again ends with the weights of one never interrupted."
    tmp, cfg, _, _ = trained
    train = load_split(Path(cfg.dataset) / "train", cfg, progress=False)
    for role, trainer in (("gaze_eval", train_gaze), ("identity", train_identity)):
        spec, ncfg = net_spec(cfg, role), getattr(cfg, role)
        full, hf = trainer(spec, ncfg, train, cfg, tmp_path / role / "full", progress=False)
        part, hp = trainer(spec, ncfg, train, cfg, tmp_path / role / "part", progress=False, stop_after=2)
        assert hp["steps"] == 2 and hf["steps"] == 6
        back, hb = trainer(spec, ncfg, train, cfg, tmp_path / role / "part", progress=False)
        assert hb == hf
        for k, v in full.state_dict().items(): assert torch.equal(v, back.state_dict()[k]), (role, k)


def test_mismatched_checkpoint_is_refused(trained, tmp_path):
    tmp, cfg, _, _ = trained
    p = tmp_path / "gaze_loss.pt"; shutil.copy(Path(cfg.out_dir) / "gaze_loss.pt", p)
    other = replace(cfg, gaze_loss=NetConfig("vgg", [4, 16], 1, 1, 3e-3))
    with pytest.raises(EstimatorError, match=r"gaze_loss\.pt.*spec key 'widths'"):
        load_estimator(p, expect=net_spec(other, "gaze_loss"))
    with pytest.raises(EstimatorError, match=r"gaze_loss\.pt.*spec key 'role'"):
        load_estimator(p, expect=net_spec(cfg, "gaze_eval"))
    p.write_bytes(p.read_bytes()[:100])                                        # truncated
    with pytest.raises(EstimatorError, match=r"gaze_loss\.pt: not a readable"):
        load_estimator(p)


def test_eye_points_need_eye_geometry(tmp_path):
    "Eye points on, data without usable eye geometry: refused before any training, naming the file; off: accepted."
    write_dataset(tmp_path / "data", {"train": (2, 8)}, eye_geometry=False)
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(EstimatorError, match=r"train00\.h5: keys .* project to non-finite pixels: needed to train eye points"):
        train_estimators(cfg, "cpu", progress=False)
    assert not Path(cfg.out_dir).exists()
    train = load_split(Path(cfg.dataset) / "train", cfg, progress=False)
    check_train_data(net_spec(replace(cfg, eye_points_weight=0.0), "gaze_eval"), train)


def test_wrong_image_size_names_file(tmp_path):
    write_dataset(tmp_path / "data", {"train": (2, 8)})
    cfg = replace(tiny_cfg(tmp_path), image_size=64)
    with pytest.raises(EstimatorError, match=r"train00\.h5: key 'face_patch': images are 32 px but estimators.image_size is 64"):
        train_estimators(cfg, "cpu", progress=False)


def test_missing_split_folder(tmp_path):
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(EstimatorError, match=r"data/train: train split folder not found") as e:
        train_estimators(cfg, "cpu", progress=False)
    assert isinstance(e.value, DitgazeError)                                   # a user error: one line on the command line
    with pytest.raises(EstimatorError, match=r"data/test: split folder not found"):
        load_split(tmp_path / "data" / "test", cfg)


def test_bad_params_key(tmp_path):
    d = to_dict(tiny_cfg(tmp_path)); d["gaze_eval"]["depth"] = 3
    with pytest.raises(ConfigError, match=r"estimators.gaze_eval.depth"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
    d = to_dict(tiny_cfg(tmp_path)); d["gaze_eval"]["arch"] = "vit"
    with pytest.raises(ConfigError, match=r"estimators.gaze_eval.arch"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
    d = to_dict(tiny_cfg(tmp_path)); d["gaze_eval"]["widths"] = []
    with pytest.raises(ConfigError, match=r"params.yaml: key 'estimators.gaze_eval.widths': must be a non-empty list"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
    d = to_dict(tiny_cfg(tmp_path)); d["eye_crop_size"] = [10, 12]
    with pytest.raises(ConfigError, match=r"'estimators.eye_crop_size': \[10, 12\] must be divisible by 2\^len\(gaze_eval.widths\) = 4"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
    d = to_dict(tiny_cfg(tmp_path)); d["identity"]["eyes"] = "crops"
    with pytest.raises(ConfigError, match=r"'estimators.identity.eyes': must be 'strip'"):
        from_dict(EstimatorConfig, d, "estimators", "params.yaml")
