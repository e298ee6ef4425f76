"params.yaml, its profiles and the dvc.yaml that reads it."
import subprocess, sys
from pathlib import Path

import pytest
import yaml

from ditgaze.config import ConfigError, load_params, load_section
from ditgaze.runtime import RunConfig

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
PROFILES = ("smoke", "default", "gpu")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_resolves(profile):
    params = load_params(PARAMS, profile)
    assert params["profile"] == profile
    load_section(RunConfig, "run", PARAMS, profile)


def test_file_profile_is_default():
    assert load_params(PARAMS)["profile"] == "default"


def test_gpu_profile_asks_for_cuda():
    assert load_section(RunConfig, "run", PARAMS, "gpu").device == "cuda"


def test_dvc_stages_declare_profile_and_existing_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    top = set(yaml.safe_load(PARAMS.read_text()))
    for name, st in stages.items():
        keys = [p if isinstance(p, str) else next(iter(p)) for p in st.get("params", [])]
        assert {"profile", "profiles"} <= set(keys), f"stage {name} must list profile and profiles"
        for k in keys: assert k.split(".")[0] in top, f"stage {name}: param {k} not in params.yaml"


def test_config_stage_depends_on_every_section_it_writes():
    "The config stage writes all of params.yaml resolved; a section it does not list would leave that file stale."
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["config"]
    keys = {p if isinstance(p, str) else next(iter(p)) for p in stage["params"]}
    assert keys == set(yaml.safe_load(PARAMS.read_text())), sorted(set(yaml.safe_load(PARAMS.read_text())) ^ keys)


def _run_config_stage(tmp_path, params_text, *extra):
    p = tmp_path / "params.yaml"; p.write_text(params_text)
    return subprocess.run([sys.executable, "-m", "ditgaze.runtime", "--params", str(p), "--out", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, cwd=tmp_path)


def test_config_stage_writes_resolved_params(tmp_path):
    r = _run_config_stage(tmp_path, PARAMS.read_text(), "--profile", "smoke")
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load((tmp_path / "out" / "params_resolved.yaml").read_text())
    assert resolved["profile"] == "smoke" and resolved["run"]["device"] == "auto"
    assert (tmp_path / "out" / "environment.json").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["run"].update(sede=1), "unknown key 'run.sede'"),
    (lambda d: d["run"].pop("seed"), "missing key 'run.seed'"),
    (lambda d: d["run"].update(seed="zero"), "key 'run.seed': expected int"),
    (lambda d: d["profiles"]["smoke"].update(run={"devcie": "cpu"}), "'profiles.smoke.run.devcie'"),
    (lambda d: d.update(profile="paper"), "profile 'paper' is not one of"),
])
def test_config_stage_names_bad_key_and_file(tmp_path, edit, message):
    d = yaml.safe_load(PARAMS.read_text()); edit(d)
    r = _run_config_stage(tmp_path, yaml.safe_dump(d), "--profile", "smoke") if "paper" not in message else _run_config_stage(tmp_path, yaml.safe_dump(d))
    assert r.returncode != 0
    assert message in r.stderr and "params.yaml" in r.stderr, r.stderr[-500:]
