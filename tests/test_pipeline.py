"""The DVC pipeline end to end on the `smoke` profile, in a copy of the repository: every stage runs,
the tables hold the reference rows and the baseline, and a training run killed mid-way resumes under
`dvc repro` to the same weights and metrics as the uninterrupted run."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


def _run(cmd, cwd, timeout=900):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def repro(cwd):
    "What `make repro` does after installing."
    _run(["dvc", "repro", "generate"], cwd)
    _run(["dvc", "commit", "-f", "-q", "data.dvc"], cwd)
    return _run(["dvc", "repro"], cwd)


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    dst = tmp_path_factory.mktemp("smoke") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / f, dst / f)
    params = (dst / "params.yaml").read_text()
    assert "\nprofile: default\n" in params
    (dst / "params.yaml").write_text(params.replace("\nprofile: default\n", "\nprofile: smoke\n"))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "smoke"]):
        _run(cmd, dst)
    t0 = time.perf_counter()
    repro(dst)
    print(f"smoke pipeline: {time.perf_counter() - t0:.0f} s")
    return dst


def test_every_stage_writes_its_outputs(smoke_repo):
    r = _run(["dvc", "status"], smoke_repo)
    assert "up to date" in r.stdout, r.stdout
    for f in ("reports/run/params_resolved.yaml", "reports/data/contact_sheet.png", "runs/estimators/gaze_eval.pt",
              "runs/baseline/last.pt", "reports/train/baseline/curve.tsv", "reports/figures/baseline_pairs.png",
              "reports/figures/baseline_sweep.png", "reports/analysis/gaze_sweep.png", "reports/analysis/gaze_sweep.ipynb", "reports/tables/test.md", "reports/tables/shift_light.md"):
        assert (smoke_repo / f).is_file(), f
    speed = json.loads((smoke_repo / "reports/speed/test.json").read_text())["models"]
    assert speed["baseline"]["fps"]["images_per_second"] > 0


def test_tables_hold_reference_rows_and_baseline(smoke_repo):
    m = json.loads((smoke_repo / "reports/metrics/test.json").read_text())
    text = json.dumps(m)
    for row in ("copy_input", "ground_truth", "baseline", "baseline_fit"): assert f'"{row}"' in text, row
    table = (smoke_repo / "reports/tables/test.md").read_text()
    assert "ynthetic" in table and "baseline" in table and "copy_input" in table.replace("copy input", "copy_input")


def test_killed_training_resumes_to_the_same_result(smoke_repo):
    "Kill the training stage after its first checkpoint, `dvc repro`, compare with the uninterrupted run."
    run_dir = smoke_repo / "runs/baseline"
    reference = torch.load(run_dir / "last.pt", weights_only=False)
    metrics_before = json.loads((smoke_repo / "reports/metrics/test.json").read_text())
    shutil.rmtree(run_dir)
    p = subprocess.Popen([sys.executable, "-m", "ditgaze.train_redirector", "--params", "params.yaml", "--section", "train_baseline"],
                         cwd=smoke_repo, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (run_dir / "last.pt").exists():
        assert p.poll() is None, "training ended before its first checkpoint"
        assert time.time() < deadline; time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.wait()
    killed_at = torch.load(run_dir / "last.pt", weights_only=False)["step"]
    assert 0 < killed_at < reference["step"], killed_at
    r = repro(smoke_repo)
    assert "train_baseline" in r.stdout
    resumed = torch.load(run_dir / "last.pt", weights_only=False)
    assert resumed["step"] == reference["step"]
    for k, v in reference["model"].items(): assert torch.equal(v, resumed["model"][k]), k   # CPU: bit-identical
    metrics_after = json.loads((smoke_repo / "reports/metrics/test.json").read_text())
    assert metrics_after == metrics_before
