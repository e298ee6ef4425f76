"""params.yaml, its profiles and runs, the dvc.yaml that reads it, and `ditgaze config`, the stage that checks all of it:
a wrong key or type anywhere stops it with one line naming the key and the file."""
import dataclasses, os, platform, subprocess, sys
from pathlib import Path

import pytest
import yaml

from ditgaze.cli import STAGES, main, sections
from ditgaze.config import load_params
from ditgaze.training import TrainConfig, run_config

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
DITGAZE = Path(sys.executable).parent / "ditgaze"          # the console script of the venv running the tests
RAW = yaml.safe_load(PARAMS.read_text())
PROFILES = sorted(RAW["profiles"])


def test_repo_has_the_documented_profiles_and_sections():
    assert {"default", "smoke", "gpu"} <= set(PROFILES)
    assert RAW["profile"] == "default"
    assert set(RAW) == set(sections()) | {"profile", "profiles"}, sorted(set(RAW) ^ (set(sections()) | {"profile", "profiles"}))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_and_run_resolves(profile):
    p = load_params(PARAMS, sections(), profile)
    assert p["profile"] == profile
    for name, tp in sections().items():
        if dataclasses.is_dataclass(tp): assert isinstance(p[name], tp), name
    assert p["runs"], "params.yaml declares no run"
    for name in p["runs"]:
        cfg = run_config(p["train"], p["runs"], name, PARAMS)
        assert isinstance(cfg, TrainConfig)
    sizes = {p["data"].image_size, p["estimators"].image_size, p["gaussians"].streams.image_size}
    assert len(sizes) == 1, f"profile {profile}: image sizes disagree: {sizes}"


def test_default_profile_is_the_dataclass_defaults():
    "params.yaml lists only what differs: with the default profile every section is its dataclass's defaults."
    p = load_params(PARAMS, sections(), "default")
    for name, tp in sections().items():
        if dataclasses.is_dataclass(tp): assert p[name] == tp(), name


def test_a_change_means_the_same_in_the_section_and_in_a_profile(tmp_path):
    "params.yaml lists only what differs, wherever it is written: `data.domains.shift_light.subjects: 1` keeps that domain's shifted light."
    from ditgaze.synth_data import DataConfig
    change = {"domains": {"shift_light": {"subjects": 1}}}
    def resolve(section: dict, profile: dict):
        p = tmp_path / "params.yaml"
        p.write_text(yaml.safe_dump({"profile": "p", "profiles": {"p": profile}, "data": section}))
        return load_params(p, {"data": DataConfig})["data"]
    in_profile, in_section = resolve({}, {"data": change}), resolve(change, {})
    assert in_profile.domains["shift_light"].light == "shifted" and set(in_profile.domains) == set(DataConfig().domains)
    assert in_section == in_profile


def test_file_profile_is_default():
    assert load_params(PARAMS, {})["profile"] == "default"


def test_gpu_profile_asks_for_cuda():
    assert load_params(PARAMS, sections(), "gpu")["run"].device == "cuda"


def _stage_params(st: dict) -> list[str]:
    "A dvc.yaml stage's params keys (a foreach stage keeps them under `do`)."
    st = st.get("do", st)
    return [p if isinstance(p, str) else next(iter(p)) for p in st.get("params", [])]


def test_dvc_stages_declare_profile_and_existing_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    known = set(sections()) | {"profile", "profiles"}
    for name, st in stages.items():
        keys = _stage_params(st)
        assert {"profile", "profiles"} <= set(keys), f"stage {name} must list profile and profiles"
        for k in keys: assert k.split(".")[0] in known, f"stage {name}: param {k} is not a params section"


def test_config_stage_depends_on_every_section():
    "The config stage checks and writes all of params.yaml resolved; a section it does not list would not rerun it."
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["config"]
    keys = set(_stage_params(stage))
    assert keys == set(sections()) | {"profile", "profiles"}, sorted(keys ^ (set(sections()) | {"profile", "profiles"}))


def test_help_lists_every_stage():
    r = subprocess.run([str(DITGAZE), "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert set(STAGES) == {"config", "generate", "estimators", "gaussians", "vae", "train", "evaluate", "report", "ablate", "ablations", "readme"}
    for stage in STAGES: assert stage in r.stdout, stage


def _config(tmp_path, params: dict | str, *extra):
    "`ditgaze config` as a process on a copy of params, in `tmp_path`; returns (the params path, the completed process)."
    p = tmp_path / "params.yaml"
    p.write_text(params if isinstance(params, str) else yaml.safe_dump(params, sort_keys=False))
    r = subprocess.run([str(DITGAZE), "config", "--params", str(p), "--out", str(tmp_path / "out"), *extra],
                       capture_output=True, text=True, cwd=tmp_path)
    return p, r


def test_config_stage_writes_resolved_params(tmp_path):
    _, r = _config(tmp_path, PARAMS.read_text(), "--profile", "smoke")
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load((tmp_path / "out" / "params_resolved.yaml").read_text())
    assert resolved["profile"] == "smoke" and resolved["run"]["device"] == "auto"
    assert resolved["data"]["image_size"] == 64 and resolved["gaussians"]["streams"]["head"]["n_face"] == 300
    assert set(resolved["runs"]) == set(RAW["runs"]) and resolved["runs"]["baseline"]["optim"]["steps"] == 30   # a run: `train` + its override
    assert (tmp_path / "out" / "valid.txt").read_text() and (tmp_path / "out" / "environment.json").exists()


def _set(d: dict, dotted: str, value) -> None:
    "Set d[a][b][c] = value for dotted 'a.b.c', creating (or replacing non-mapping) parents on the way."
    *path, last = dotted.split(".")
    for k in path:
        if not isinstance(d.get(k), dict): d[k] = {}
        d = d[k]
    d[last] = value


BAD = [  # (dotted place in params.yaml, value, what the one error line must say)
    ("data.image_sise", 64, "unknown key 'data.image_sise'"),
    ("gaussians.optim.steps", "many", "key 'gaussians.optim.steps': expected int"),
    ("estimators.eye_size", [16, "wide"], "key 'estimators.eye_size[1]'"),
    ("run.seed", -1, "key 'run.seed': must be >= 0"),
    ("runs.baseline.modle", {}, "unknown key 'runs.baseline.modle'"),
    ("runs.baseline.optim.steps", 1.5, "key 'runs.baseline.optim.steps': expected int"),
    ("evalute", {}, "unknown section 'evalute'"),
    ("profiles.default.data.image_sise", 64, "'profiles.default.data.image_sise'"),          # the profile in effect
    ("profiles.default.trian", {}, "unknown section 'profiles.default.trian'"),
    ("profile", "paper", "profile 'paper' is not one of"),
    ("ablations.no_ortho.metrics", ["emb_cos", "identiy"], "key 'ablations.no_ortho.metrics': unknown column 'identiy'"),
    ("ablations.no_ortho.run", "dit", "key 'ablations.no_ortho.run': no run 'dit' in 'runs'"),
]


@pytest.mark.parametrize("dotted, value, message", BAD, ids=[b[0] for b in BAD])
def test_config_stage_names_a_bad_key_and_the_file_in_one_line(tmp_path, dotted, value, message):
    d = yaml.safe_load(PARAMS.read_text())
    _set(d, dotted, value)
    p, r = _config(tmp_path, d)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith("ditgaze config: error: ") and message in lines[0] and str(p) in lines[0], lines[0]
    assert not (tmp_path / "out").exists()                                   # nothing written: stages depending on valid.txt cannot run


@pytest.mark.parametrize("dotted, value", [("profiles.gpu.data.image_sise", 64), ("profiles.smoke.gaussians.optim.steps", "many")])
def test_config_stage_checks_profiles_not_in_effect(tmp_path, dotted, value):
    "A typo in the gpu profile must not wait until someone runs that profile: `ditgaze config` checks every profile."
    d = yaml.safe_load(PARAMS.read_text())
    _set(d, dotted, value)
    p, r = _config(tmp_path, d)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    assert dotted.split(".", 2)[2] in r.stderr and str(p) in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    d = yaml.safe_load(PARAMS.read_text())
    _set(d, "data.image_sise", 64)
    _, r = _config(tmp_path, d, "--debug")
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "ConfigError" in r.stderr and "unknown key 'data.image_sise'" in r.stderr


def test_declared_outputs_do_not_depend_on_the_machine(tmp_path, monkeypatch):
    "The config stage's DVC outputs are the same bytes on another machine; environment.json (not declared) records the machine."
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["config"]["outs"]]
    assert sorted(outs) == ["reports/run/params_resolved.yaml", "reports/run/valid.txt"]
    names = [Path(o).name for o in outs] + ["environment.json"]
    got = {}
    for tag, plat, cpus in (("a", "Linux-A-x86_64", 2), ("b", "Darwin-B-arm64", 64)):
        monkeypatch.setattr(platform, "platform", lambda *a, **k: plat)
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
        assert main(["config", "--params", str(PARAMS), "--out", str(tmp_path / tag)]) == 0
        got[tag] = {n: (tmp_path / tag / n).read_bytes() for n in names}
    for n in names[:-1]: assert got["a"][n] == got["b"][n], n
    assert got["a"]["environment.json"] != got["b"]["environment.json"]
    assert b"Darwin-B-arm64" in got["b"]["environment.json"]
