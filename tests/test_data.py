"Data layer: deterministic writing, the three layouts, validation errors on bad files, the lazy Dataset, pair builders."
import hashlib, pickle, time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ditgaze.data import (DITGAZE_SCHEMA, MASK_KEYS, DataError, PairDataset, SubjectDataset, check_arrays, gaze_pairs,
                          load_analysis_only_params, multiview_groups, multiview_pairs, protocol_pairs, read_pairs_csv,
                          validate_subject_file, write_subject)
from ditgaze.geometry import angular_error

# ---------------------------------------------------------------- fixture writers (files go to tmp_path)

ATTRS = dict(subject="s000", split="train", domain="base", image_size=8, generator="test", seed=0)

GAZENERF_KEYS = ["frame_index", "cam_index", "facial_landmarks", "face_patch", "head_mask", "left_eye_mask", "right_eye_mask",
                 "latent_codes", "w2c_Rmat", "w2c_Tvec", "inmat", "c2w_Rmat", "c2w_Tvec", "inv_inmat", "pitchyaw",
                 "pitchyaw_head", "face_head_pose"]
GAZEGAUSSIAN_EXTRA = ["facial_landmarks_3d", "vertice", "pose", "scale"]
XGAZE_KEYS = ["face_patch", "face_gaze", "face_head_pose", "frame_index", "cam_index", "face_mat_norm"]


def ditgaze_arrays(n=6, size=8, seed=0):
    "Arrays satisfying DITGAZE_SCHEMA; frames 0,0,0,1,1,1 seen by cameras 0,1,2."
    rng = np.random.default_rng(seed)
    dims = {"N": n, "H": size, "W": size, "E": 5, "P": 7}
    out = {}
    for k, s in DITGAZE_SCHEMA.items():
        shape = tuple(dims[p] if isinstance(p, str) else p for p in s.shape)
        if k in MASK_KEYS: out[k] = (rng.random(shape) > 0.5).astype(np.uint8)
        elif s.dtype == "uint8": out[k] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif s.dtype == "int32": out[k] = np.zeros(shape, np.int32)
        else: out[k] = (rng.normal(size=shape) * 0.3).astype(np.float32)
    out["frame_index"] = (np.arange(n) // 3).astype(np.int32)
    out["cam_index"] = (np.arange(n) % 3).astype(np.int32)
    return out


def write_raw(path, arrays, attrs=None):
    "Write arrays exactly as given (third-party layouts)."
    with h5py.File(path, "w") as f:
        for k, v in arrays.items(): f.create_dataset(k, data=v)
        for k, v in (attrs or {}).items(): f.attrs[k] = v
    return path


def gazenerf_arrays(a, gaussian=False, mask_style="255"):
    "GazeNeRF/GazeGaussian preprocessing output: float64 labels, [N,1] uint8 indices, masks as `mask_style`."
    n = len(a["face_patch"])
    out = {"face_patch": a["face_patch"], "frame_index": a["frame_index"][:, None].astype(np.int64),
           "cam_index": a["cam_index"][:, None].astype(np.uint8), "latent_codes": np.zeros((n, 306))}
    for k in ("facial_landmarks", "w2c_Rmat", "w2c_Tvec", "inmat", "c2w_Rmat", "c2w_Tvec", "inv_inmat", "pitchyaw",
              "pitchyaw_head", "face_head_pose"):
        out[k] = a[k].astype(np.float64)
    for k in MASK_KEYS:
        out[k] = {"255": a[k] * 255, "01": a[k], "bool": a[k].astype(bool)}[mask_style]
    if gaussian:
        out.update(facial_landmarks_3d=a["facial_landmarks_3d"].astype(np.float64), vertice=np.zeros((n, 40, 3)),
                   pose=np.zeros((n, 6)), scale=np.ones((n, 1)))
    return out


def xgaze_arrays(a):
    return dict(face_patch=a["face_patch"], face_gaze=a["pitchyaw"], face_head_pose=a["face_head_pose"],
                frame_index=a["frame_index"][:, None], cam_index=a["cam_index"][:, None], face_mat_norm=a["w2c_Rmat"])


def md5(p): return hashlib.md5(Path(p).read_bytes()).hexdigest()


@pytest.fixture
def split(tmp_path):
    "A split folder with 3 ditgaze subjects of 6 images each."
    d = tmp_path / "synthetic" / "train"
    for s in range(3):
        write_subject(d / f"s{s:03d}.h5", ditgaze_arrays(seed=s), dict(ATTRS, subject=f"s{s:03d}"))
    return d


# ---------------------------------------------------------------- writing

def test_write_is_byte_identical(tmp_path):
    a = ditgaze_arrays()
    write_subject(tmp_path / "a.h5", a, ATTRS)
    time.sleep(1.1)
    rev_arrays = dict(reversed(list({k: v.copy() for k, v in a.items()}.items())))
    write_subject(tmp_path / "b.h5", rev_arrays, dict(reversed(list(ATTRS.items()))))     # other insertion order
    assert md5(tmp_path / "a.h5") == md5(tmp_path / "b.h5")
    write_subject(tmp_path / "c.h5", a, dict(ATTRS, seed=1))
    assert md5(tmp_path / "a.h5") != md5(tmp_path / "c.h5")
    with h5py.File(tmp_path / "a.h5") as f:
        assert list(f) == sorted(a) and list(f.attrs) == sorted(ATTRS)
        for k in a:
            assert f[k].compression == "gzip" and f[k].dtype == a[k].dtype
            np.testing.assert_array_equal(f[k][()], a[k])


@pytest.mark.parametrize("change, msg", [
    (lambda a: a.pop("ditgaze_iris_radius"), "missing required key(s) ['ditgaze_iris_radius']"),
    (lambda a: a.update(inmat=a["inmat"].astype(np.float64)), "key 'inmat': expected dtype float32, got float64"),
    (lambda a: a.update(facial_landmarks=a["facial_landmarks"][:, :60]), "key 'facial_landmarks': expected shape [N,68,2]"),
    (lambda a: a.update(pitchyaw=a["pitchyaw"][:5]), "key 'pitchyaw': inconsistent N"),
    (lambda a: a.update(extra=np.zeros(6, np.float32)), "unknown key(s) ['extra']"),
    (lambda a: a.update(left_eye_mask=a["left_eye_mask"] * 3), "key 'left_eye_mask': mask values must be 0 or 1"),
    (lambda a: a["face_head_pose"].__setitem__((1, 0), np.inf), "key 'face_head_pose': non-finite"),
    (lambda a: a.update({k: a[k][:, :, :4] for k in ("face_patch", *MASK_KEYS)}), "image must be square"),
])
def test_write_rejects_bad_arrays(tmp_path, change, msg):
    a = ditgaze_arrays(); change(a)
    with pytest.raises(DataError) as e: write_subject(tmp_path / "x.h5", a, ATTRS)
    assert msg in str(e.value) and "x.h5" in str(e.value)
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.tmp").exists()


def test_write_rejects_bad_attrs(tmp_path):
    with pytest.raises(DataError, match="attribute 'image_size': expected int"):
        write_subject(tmp_path / "x.h5", ditgaze_arrays(), dict(ATTRS, image_size="8"))
    with pytest.raises(DataError, match="missing attribute 'domain'"):
        write_subject(tmp_path / "x.h5", ditgaze_arrays(), {k: v for k, v in ATTRS.items() if k != "domain"})


# ---------------------------------------------------------------- the three layouts

@pytest.mark.parametrize("kind", ["ditgaze", "gazenerf", "gazegaussian", "xgaze"])
def test_layouts_read_the_same(tmp_path, kind):
    a = ditgaze_arrays()
    p = tmp_path / f"{kind}.h5"
    if kind == "ditgaze": write_subject(p, a, ATTRS)
    elif kind == "xgaze": write_raw(p, xgaze_arrays(a))
    else: write_raw(p, gazenerf_arrays(a, gaussian=kind == "gazegaussian"))
    with h5py.File(p) as f:
        want = {"ditgaze": set(DITGAZE_SCHEMA), "gazenerf": set(GAZENERF_KEYS), "gazegaussian": set(GAZENERF_KEYS + GAZEGAUSSIAN_EXTRA),
                "xgaze": set(XGAZE_KEYS)}[kind]
        assert set(f) == want                                                    # the fixture has exactly the layout's keys
    info = validate_subject_file(p, full=True)
    assert info.layout == {"gazegaussian": "gazenerf"}.get(kind, kind) and info.n == 6 and info.image_size == 8
    ds = SubjectDataset([p])
    fields = {"ditgaze": {"image", "head_mask", "left_eye_mask", "right_eye_mask", "gaze", "gaze_head", "head_pose", "w2c", "K",
                          "landmarks", "landmarks_3d", "eyeball_centers", "frame_index", "cam_index", "subject"},
              "xgaze": {"image", "gaze", "head_pose", "frame_index", "cam_index", "subject"}}
    fields["gazegaussian"] = fields["ditgaze"] - {"eyeball_centers"}              # GazeGaussian's files add the 3-D landmarks
    fields["gazenerf"] = fields["gazegaussian"] - {"landmarks_3d"}
    d = ds[4]
    assert set(d) == fields[kind]
    rgb = a["face_patch"][4][..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255                 # BGR -> RGB
    torch.testing.assert_close(d["image"], torch.from_numpy(rgb.copy()))
    assert d["image"].dtype == torch.float32 and d["image"].shape == (3, 8, 8)
    torch.testing.assert_close(d["gaze"], torch.from_numpy(a["pitchyaw"][4]))
    torch.testing.assert_close(d["head_pose"], torch.from_numpy(a["face_head_pose"][4]))
    assert d["frame_index"].dtype == torch.int64 and int(d["frame_index"]) == 1 and int(d["cam_index"]) == 1
    if kind != "xgaze":
        for m in MASK_KEYS:
            assert d[m].shape == (1, 8, 8) and d[m].dtype == torch.float32
            np.testing.assert_array_equal(d[m][0].numpy(), a[m][4].astype(np.float32))
        torch.testing.assert_close(d["gaze_head"], torch.from_numpy(a["pitchyaw_head"][4]))
        torch.testing.assert_close(d["K"], torch.from_numpy(a["inmat"][4]))
        torch.testing.assert_close(d["w2c"][:3, :3], torch.from_numpy(a["w2c_Rmat"][4]))
        torch.testing.assert_close(d["w2c"][:3, 3], torch.from_numpy(a["w2c_Tvec"][4]))
        assert d["w2c"][3].tolist() == [0, 0, 0, 1] and d["landmarks"].shape == (68, 2)
    if kind == "ditgaze":
        torch.testing.assert_close(d["eyeball_centers"], torch.from_numpy(a["ditgaze_eyeball_centers"][4]))
    ds.close()


@pytest.mark.parametrize("style", ["255", "01", "bool"])
def test_third_party_masks_normalised(tmp_path, style):
    a = ditgaze_arrays()
    p = write_raw(tmp_path / "g.h5", gazenerf_arrays(a, mask_style=style))
    d = SubjectDataset([p])[2]
    for m in MASK_KEYS:
        np.testing.assert_array_equal(d[m][0].numpy(), a[m][2].astype(np.float32))
        assert set(np.unique(d[m].numpy())) <= {0.0, 1.0}


def test_xgaze_test_split_without_labels(tmp_path):
    x = xgaze_arrays(ditgaze_arrays()); x.pop("face_gaze")
    ds = SubjectDataset([write_raw(tmp_path / "t.h5", x)])
    assert "gaze" not in ds[0] and "head_pose" in ds[0]


def test_identity_expression_only_through_analysis_function(split):
    ds = SubjectDataset(split)
    assert not any("ident" in k or "expr" in k for k in ds[0])
    gt = load_analysis_only_params(split / "s001.h5")
    np.testing.assert_array_equal(gt["identity"], ditgaze_arrays(seed=1)["ditgaze_identity"])
    assert gt["expression"].shape == (6, 5)


# ---------------------------------------------------------------- validation of bad files

def _bad_file(tmp_path, kind):
    a = ditgaze_arrays()
    p = tmp_path / f"{kind}.h5"
    if kind == "missing_key":
        g = gazenerf_arrays(a); g.pop("w2c_Tvec"); write_raw(p, g)
    elif kind == "missing_key_ditgaze":
        a.pop("ditgaze_light"); write_raw(p, a, ATTRS)
    elif kind == "wrong_shape":
        x = xgaze_arrays(a); x["face_gaze"] = np.zeros((6, 3), np.float32); write_raw(p, x)
    elif kind == "wrong_dtype":
        x = xgaze_arrays(a); x["face_patch"] = x["face_patch"].astype(np.float32); write_raw(p, x)
    elif kind == "wrong_dtype_ditgaze":
        a["pitchyaw"] = a["pitchyaw"].astype(np.float64); write_raw(p, a, ATTRS)
    elif kind == "inconsistent_n":
        g = gazenerf_arrays(a); g["pitchyaw_head"] = g["pitchyaw_head"][:4]; write_raw(p, g)
    elif kind == "nan_label":
        g = gazenerf_arrays(a); g["pitchyaw"][3, 1] = np.nan; write_raw(p, g)
    elif kind == "inf_label":
        x = xgaze_arrays(a); x["face_head_pose"] = x["face_head_pose"].copy(); x["face_head_pose"][0, 0] = -np.inf; write_raw(p, x)
    elif kind == "zero_bytes":
        p.write_bytes(b"")
    elif kind == "no_datasets":
        write_raw(p, {}, {"subject": "s"})
    elif kind == "truncated":
        write_subject(tmp_path / "full.h5", a, ATTRS)
        raw = (tmp_path / "full.h5").read_bytes(); p.write_bytes(raw[: len(raw) // 2])
    elif kind == "not_hdf5":
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    elif kind == "missing_attr":
        write_raw(p, a, {k: v for k, v in ATTRS.items() if k != "generator"})
    elif kind == "unknown_layout":
        write_raw(p, {"images": np.zeros((2, 8, 8, 3), np.uint8)})
    elif kind == "bad_mask_values":
        g = gazenerf_arrays(a); g["head_mask"] = (g["head_mask"] // 2).astype(np.uint8); write_raw(p, g)   # 0/127
    elif kind == "group_key":
        with h5py.File(p, "w") as f: f.create_group("face_gaze"); f["face_patch"] = a["face_patch"]
    return p


@pytest.mark.parametrize("kind, key, msg", [
    ("missing_key", None, "missing required key(s) ['w2c_Tvec']"),
    ("missing_key_ditgaze", None, "missing required key(s) ['ditgaze_light']"),
    ("wrong_shape", "face_gaze", "expected shape [N,2], got [6,3]"),
    ("wrong_dtype", "face_patch", "expected dtype uint8"),
    ("wrong_dtype_ditgaze", "pitchyaw", "expected dtype float32, got float64"),
    ("inconsistent_n", "pitchyaw_head", "inconsistent N"),
    ("nan_label", "pitchyaw", "non-finite value (NaN/inf) at index [3, 1]"),
    ("inf_label", "face_head_pose", "non-finite"),
    ("zero_bytes", None, "empty file (0 bytes)"),
    ("no_datasets", None, "empty file: no datasets"),
    ("truncated", None, "truncated or corrupt"),
    ("not_hdf5", None, "not an HDF5 file"),
    ("missing_attr", None, "missing attribute 'generator'"),
    ("unknown_layout", None, "cannot tell the layout"),
    ("group_key", "face_gaze", "is a group"),
])
def test_validate_names_file_and_key(tmp_path, kind, key, msg):
    p = _bad_file(tmp_path, kind)
    with pytest.raises(DataError) as e: validate_subject_file(p)
    s = str(e.value)
    assert s.startswith(str(p)) and msg in s, s
    if key: assert f"'{key}'" in s, s
    with pytest.raises(DataError):                                 # the Dataset refuses it the same way
        SubjectDataset([p])


def test_full_check_reads_mask_values(tmp_path):
    p = _bad_file(tmp_path, "bad_mask_values")
    validate_subject_file(p)                                       # the quick check does not read every mask row
    with pytest.raises(DataError, match=r"key 'head_mask': row 0: mask values must be 0/1 or 0/255"):
        validate_subject_file(p, full=True)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="nope.h5: file not found"): validate_subject_file(tmp_path / "nope.h5")
    (tmp_path / "empty_split").mkdir()
    with pytest.raises(DataError, match="no .h5 subject files"): SubjectDataset(tmp_path / "empty_split")


def test_corrupt_chunk_names_key(tmp_path):
    "A file whose image bytes are damaged (but whose metadata is intact) fails on read, naming the key."
    a = ditgaze_arrays(size=64)
    a["face_patch"] = np.full_like(a["face_patch"], 7)
    p = tmp_path / "c.h5"; write_subject(p, a, dict(ATTRS, image_size=64))
    with h5py.File(p) as f: off = f["face_patch"].id.get_chunk_info(0).byte_offset
    raw = bytearray(p.read_bytes()); raw[off + 4: off + 40] = b"\xff" * 36; p.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e: validate_subject_file(p)
    assert str(p) in str(e.value) and "face_patch" in str(e.value)


# ---------------------------------------------------------------- the Dataset

def test_dataset_split_folder_and_index(split):
    ds = SubjectDataset(split)
    assert ds._handles == {}                                      # nothing kept open by __init__
    assert len(ds) == 18 and ds.subjects == ["s000", "s001", "s002"]
    assert ds.locate(13) == (2, 1) and ds.index(2, 1) == 13 and ds.locate(-1) == (2, 5)
    np.testing.assert_array_equal(ds[13]["gaze"].numpy(), ditgaze_arrays(seed=2)["pitchyaw"][1])
    assert int(ds[13]["subject"]) == 2
    with pytest.raises(IndexError): ds[18]
    ds2 = pickle.loads(pickle.dumps(ds))                          # handles do not travel
    assert ds2._handles == {} and int(ds2[13]["cam_index"]) == 1


def _batches(ds, workers):
    dl = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False, num_workers=workers)
    return list(dl)


def test_dataloader_workers_0_and_2(split):
    ds = SubjectDataset(split)
    b0 = _batches(ds, 0)                                          # the parent now holds open handles
    assert ds._handles
    b2 = _batches(ds, 2)                                          # forked workers must open their own
    assert len(b0) == len(b2) == 4
    for x, y in zip(b0, b2):
        assert x.keys() == y.keys()
        for k in x: torch.testing.assert_close(x[k], y[k])
    assert b0[0]["image"].shape == (5, 3, 8, 8) and b0[0]["w2c"].shape == (5, 4, 4)
    assert b0[-1]["subject"].tolist() == [2, 2, 2]
    ds.close()


def test_mixed_files_refused(tmp_path, split):
    p = write_raw(tmp_path / "gn.h5", gazenerf_arrays(ditgaze_arrays()))
    with pytest.raises(DataError, match="layout 'gazenerf' differs"): SubjectDataset([split / "s000.h5", p])
    write_subject(tmp_path / "big.h5", ditgaze_arrays(size=16), dict(ATTRS, image_size=16, subject="big"))
    with pytest.raises(DataError, match="big.h5: key 'face_patch': image size 16 differs"): SubjectDataset([split / "s000.h5", tmp_path / "big.h5"])
    with pytest.raises(DataError, match="duplicate subject"): SubjectDataset([split / "s000.h5", split / "s000.h5"])


# ---------------------------------------------------------------- pairs and groups

def test_gaze_pairs_threshold_and_seed():
    rng = np.random.default_rng(0)
    subject = np.repeat(np.arange(4), 50)
    gaze = rng.uniform(-0.6, 0.6, (200, 2))
    p = gaze_pairs(subject, gaze, 15.0, seed=3, per_anchor=2)
    assert p.dtype == np.int64 and p.shape[1] == 2 and len(p) > 300
    assert (subject[p[:, 0]] == subject[p[:, 1]]).all()
    ang = angular_error(torch.from_numpy(gaze[p[:, 0]]), torch.from_numpy(gaze[p[:, 1]]))
    assert (ang >= 15.0).all()
    np.testing.assert_array_equal(p, gaze_pairs(subject, gaze, 15.0, seed=3, per_anchor=2))
    assert not np.array_equal(p, gaze_pairs(subject, gaze, 15.0, seed=4, per_anchor=2))
    # all far-enough partners are reachable: with per_anchor large, every qualifying pair appears
    full = gaze_pairs(subject, gaze, 15.0, seed=0, per_anchor=1000)
    a = angular_error(torch.from_numpy(gaze[:50, None]), torch.from_numpy(gaze[None, :50]))
    assert (full[:, 0] < 50).sum() == int((a >= 15.0).sum())
    with pytest.raises(ValueError, match="different lengths"): gaze_pairs(subject[:10], gaze, 15.0, seed=0)


def test_multiview(split):
    ds = SubjectDataset(split)
    s, fr, cam = ds.labels("subject"), ds.labels("frame_index"), ds.labels("cam_index")
    groups = multiview_groups(s, fr, cam)
    assert [g.tolist() for g in groups[:2]] == [[0, 1, 2], [3, 4, 5]] and len(groups) == 6
    p = multiview_pairs(s, fr, cam, seed=0, per_anchor=2)
    assert len(p) == 36
    assert (s[p[:, 0]] == s[p[:, 1]]).all() and (fr[p[:, 0]] == fr[p[:, 1]]).all() and (cam[p[:, 0]] != cam[p[:, 1]]).all()
    np.testing.assert_array_equal(p, multiview_pairs(s, fr, cam, seed=0, per_anchor=2))
    # a single-camera frame forms no group
    assert multiview_groups(np.zeros(3), np.array([0, 1, 2]), np.zeros(3)) == []


def test_protocol_pairs(tmp_path, split):
    ds = SubjectDataset(split)
    csvp = tmp_path / "pairs_train.csv"
    csvp.write_text("subject,input_index,target_index\ns000,0,3\ns002,2,5\n\n")
    p = protocol_pairs(ds, csvp)
    assert p.tolist() == [[0, 3], [14, 17]]
    item = PairDataset(ds, p)[1]
    assert int(item["input"]["subject"]) == 2 and int(item["target"]["frame_index"]) == 1
    batch = next(iter(torch.utils.data.DataLoader(PairDataset(ds, p), batch_size=2)))
    assert batch["input"]["image"].shape == (2, 3, 8, 8)


@pytest.mark.parametrize("text, msg", [
    ("", "empty file"),
    ("subject,input,target\ns000,0,1\n", ":1: header must be subject,input_index,target_index"),
    ("subject,input_index,target_index\n", "no pairs"),
    ("subject,input_index,target_index\ns000,0,1\ns000,1\n", ":3: expected 3 columns"),
    ("subject,input_index,target_index\ns000,0,1.5\n", ":2: input_index/target_index must be integers"),
    ("subject,input_index,target_index\ns000,-1,1\n", ":2: negative index"),
    ("subject,input_index,target_index\ns000,0,1\nnobody,0,1\n", ":3: unknown subject 'nobody'"),
    ("subject,input_index,target_index\ns001,6,1\n", ":2: input_index 6 out of range for subject 's001' (N=6)"),
])
def test_protocol_pairs_errors(tmp_path, split, text, msg):
    p = tmp_path / "pairs_test.csv"; p.write_text(text)
    ds = SubjectDataset(split)
    with pytest.raises(DataError) as e: protocol_pairs(ds, p)
    assert str(e.value).startswith(str(p)) and msg in str(e.value), str(e.value)


def test_write_rejects_zero_images(tmp_path):
    a = {k: (v if k == "ditgaze_identity" else v[:0]) for k, v in ditgaze_arrays().items()}
    with pytest.raises(DataError, match=r"x.h5: key '.*': no images \(N=0\)"): write_subject(tmp_path / "x.h5", a, ATTRS)
