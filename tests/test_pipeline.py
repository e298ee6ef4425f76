"""The DVC pipeline end to end on the `smoke` profile, in a copy of the repository: every stage writes what dvc.yaml
declares, the tables hold the reference rows and the baseline's, the analysis notebooks run through papermill on
whichever runs they are given, and a training run killed mid-way resumes under `dvc repro` to the uninterrupted run's
bytes, so nothing downstream reruns."""
import json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent          # the venv's bin: ditgaze, dvc, papermill
SPLITS = ("test", "shift_light", "shift_identity")
REFS = ["copy_input", "mean_face", "ground_truth"]
GROUPS = ("references", "vae", "baseline", "ditgaze")
ANALYSIS = {"gaze_sweep": ["gaze_sweep", "gaze_sweep_curves"], "orthogonality": ["orthogonality", "orthogonality_projection", "orthogonality_factors"]}
ANALYSIS_RUNS = ("baseline", "ditgaze", "ablations/full", "ablations/no_ortho")   # what the analysis stages compare, where trained


def _env():
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


def _run(cmd, cwd, timeout=900):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def repro(cwd):
    "What `make repro` does after installing: the rest of the pipeline two stages at a time."
    _run(["dvc", "repro", "generate"], cwd)
    _run(["dvc", "commit", "-f", "-q", "data.dvc"], cwd)
    return _run([str(BIN / "python"), str(Path(cwd) / "scripts/repro_lanes.py"), "--lanes", "2"], cwd)


def declared_outputs(repo: Path) -> dict[str, list[str]]:
    "Every stage's declared outs, metrics and plots, per stage (foreach stages expanded over their params.yaml section)."
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    out = {}
    for name, st in stages.items():
        keys = params[st["foreach"].strip("${}")] if "foreach" in st else [None]
        for key, body in ([(k, st["do"]) for k in keys] if "foreach" in st else [(None, st)]):
            paths = [next(iter(o)) if isinstance(o, dict) else o for kind in ("outs", "metrics", "plots") for o in body.get(kind, [])]
            out[f"{name}@{key}" if key else name] = [p.replace("${key}", key) if key else p for p in paths]
    return out


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    dst = tmp_path_factory.mktemp("smoke") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / f, dst / f)
    params = (dst / "params.yaml").read_text()
    assert yaml.safe_load(params)["profile"] == "default"
    (dst / "params.yaml").write_text(params.replace("\nprofile: default", "\nprofile: smoke", 1))    # the file's comments stay
    assert yaml.safe_load((dst / "params.yaml").read_text())["profile"] == "smoke"
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "smoke"]):
        _run(cmd, dst)
    t0 = time.perf_counter()
    repro(dst)
    print(f"smoke pipeline: {time.perf_counter() - t0:.0f} s")
    return dst


def test_every_stage_writes_its_outputs(smoke_repo):
    r = _run(["dvc", "status"], smoke_repo)
    assert "up to date" in r.stdout, r.stdout
    assert yaml.safe_load((smoke_repo / "reports/run/params_resolved.yaml").read_text())["profile"] == "smoke"
    outs = declared_outputs(smoke_repo)
    assert {"config", "generate", "estimators", "gaussians", "vae", "train@baseline", "train@ditgaze", "references", "evaluate_vae",
            "evaluate@baseline", "evaluate@ditgaze", "report", "analysis_sweep", "analysis_orthogonality", "ablations",
            *[f"ablate@{r}" for r in yaml.safe_load((smoke_repo / "params.yaml").read_text())["ablations"]]} == set(outs), sorted(outs)
    for stage, paths in outs.items():
        for p in paths:
            f = smoke_repo / p
            assert f.is_file() and f.stat().st_size > 0 or f.is_dir() and any(f.iterdir()), f"{stage}: {p} missing or empty"
    for f in ("reports/run/valid.txt", "reports/run/environment.json", "data/synthetic/manifest.json",
              "runs/estimators/gaze_loss.pt", "runs/estimators/gaze_eval.pt", "runs/estimators/identity.pt",
              "runs/gaussians/last.pt", "runs/baseline/last.pt", "runs/ditgaze/last.pt", "runs/vae/config.json",
              "reports/train/gaussians.tsv", "reports/train/baseline.tsv", "reports/train/ditgaze.tsv", "reports/train/vae.tsv",
              *[f"reports/figures/{r}_{f}.png" for r in ("baseline", "ditgaze") for f in ("pairs", "sweep")], "reports/data/contact_sheet.png",
              *[f"reports/analysis/{nb}.ipynb" for nb in ANALYSIS], *[f"reports/analysis/{png}.png" for pngs in ANALYSIS.values() for png in pngs],
              *[f"reports/eval/{g}/{s}{x}" for g in GROUPS for s in SPLITS for x in (".json", "_pairs.csv")],
              *[f"reports/metrics/{s}.json" for s in SPLITS], *[f"reports/tables/{s}.md" for s in SPLITS],
              *[f"reports/speed/{g}/{s}.json" for g in GROUPS for s in SPLITS]):
        assert (smoke_repo / f).is_file(), f
    speed = json.loads((smoke_repo / "reports/speed/baseline/test.json").read_text())["rows"]
    assert speed["baseline"]["fps"]["images_per_second"] > 0
    assert speed["baseline_fit"]["fps"]["images_per_second"] > 0 and speed["baseline_fit"]["fit_seconds_per_subject"]["mean"] > 0
    speed = json.loads((smoke_repo / "reports/speed/ditgaze/test.json").read_text())["rows"]
    assert speed["ditgaze"]["fps"]["images_per_second"] > 0 and speed["ditgaze_s4"]["fps"]["images_per_second"] > 0


def test_tables_hold_reference_rows_and_baseline(smoke_repo):
    for split in SPLITS:
        m = json.loads((smoke_repo / f"reports/metrics/{split}.json").read_text())
        fitted = ["baseline_fit"] if split == "test" else []                  # evaluate.fit.splits: fitted rows on test only
        assert list(m["rows"]) == [*REFS, "vae_reconstruction", "baseline", *fitted, "ditgaze", "ditgaze_s4"], (split, list(m["rows"]))
        assert m["rows"]["baseline"]["kind"] == "model" and all(m["rows"][f]["kind"] == "fitted" for f in fitted)
        assert 0 <= m["rows"]["ditgaze"]["embedding_cos"]["value"] <= 1 and m["rows"]["ditgaze_s4"]["embedding_cos"]["value"] is None   # one model, one measurement
        assert "fps" not in json.dumps(m)                                    # DVC metrics: no measurements of this machine
        table = (smoke_repo / f"reports/tables/{split}.md").read_text()
        assert "**Synthetic data**" in table and "| copy input (reference: floor) |" in table and "| ground truth (reference: ceiling) |" in table
        assert "| mean face (reference: a generic face) |" in table and "| baseline |" in table
        assert "| ditgaze (1 sampling step) |" in table and "| ditgaze (4 sampling steps) |" in table and "| VAE reconstruction, factor 4" in table
        assert ("| baseline, fitted" in table) == (split == "test")


def test_ablation_table_has_every_row_and_verdicts(smoke_repo):
    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    m = json.loads((smoke_repo / "reports/metrics/ablations.json").read_text())
    assert list(m["rows"]) == list(params["ablations"])
    full = m["full_rows"]
    assert len(full) >= 2 and all(f in m["rows"] for f in full)
    assert set(m["verdicts"]) == set(params["ablations"]) - set(full)
    for row, v in m["verdicts"].items():
        assert all(x["verdict"] in ("better", "worse", "tie", "n/a") for x in v.values()), row
        assert v["gaze_error"]["verdict"] != "n/a", row                      # two seeds: every row gets a verdict on gaze
    for row, r in m["rows"].items():
        ck = torch.load(smoke_repo / f"runs/ablations/{row}/last.pt", weights_only=False)
        assert ck["step"] == r["steps"] >= 1, row                             # the short run the table says
        assert 0 <= r["emb_cos"] <= 1 and r["gaze_error"] > 0, row
    table = (smoke_repo / "reports/tables/ablations.md").read_text()
    assert "seed spread" in table and all(params["ablations"][n].get("label", n) in table for n in params["ablations"])
    _run(["ditgaze", "readme"], smoke_repo)                                    # what `make repro` does last
    readme = (smoke_repo / "README.md").read_text()
    assert "**Ablations**" in readme and "| full model: seed spread (max - min) |" in readme


def _papermill(repo: Path, nb: str, runs: dict, out: Path) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["papermill", f"analysis/{nb}.ipynb", str(out / f"{nb}.ipynb"), "-k", "ditgaze", "--no-progress-bar",
           "-y", yaml.safe_dump({"runs": runs}), "-p", "out_dir", str(out)]
    return subprocess.run(cmd, cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)


def test_analysis_notebooks_ran_with_widgets_and_refuse_a_missing_run(smoke_repo, tmp_path):
    "The analysis stages' executed notebooks (papermill, in the pipeline) hold their widgets; a missing run stops with one line."
    for nb, pngs in ANALYSIS.items():
        cells = json.loads((smoke_repo / f"reports/analysis/{nb}.ipynb").read_text())["cells"]
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for c in cells for o in c.get("outputs", [])), f"{nb}: no widget"
        assert not [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"], nb
    stages = yaml.safe_load((smoke_repo / "dvc.yaml").read_text())["stages"]
    assert all(f"runs/{r}" in stages["analysis_orthogonality"]["deps"] for r in ANALYSIS_RUNS)   # with and without the loss, main and ablation runs
    r = _papermill(smoke_repo, "orthogonality", {"ditgaze": "runs/ditgaze/last.pt", "gone": "runs/gone/last.pt"}, tmp_path / "missing")
    assert r.returncode != 0
    err = [o for c in json.loads((tmp_path / "missing/orthogonality.ipynb").read_text())["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [o["traceback"] for o in err] == [["RunNotFound: runs/gone/last.pt: checkpoint of run 'gone' not found (train it first)"]], err


def test_killed_training_resumes_to_the_same_result(smoke_repo):
    """Kill `ditgaze train baseline` after its first checkpoint, `dvc repro`: the resumed run writes the uninterrupted
    run's bytes, so DVC reruns nothing downstream of it."""
    run_dir = smoke_repo / "runs/baseline"
    reference = torch.load(run_dir / "last.pt", weights_only=False)
    reference_bytes = {f.name: f.read_bytes() for f in run_dir.iterdir()}
    shutil.rmtree(run_dir)
    p = subprocess.Popen([str(BIN / "ditgaze"), "train", "baseline", "--no-progress"], cwd=smoke_repo, env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (run_dir / "last.pt").exists():
            assert p.poll() is None, "training ended before its first checkpoint"
            assert time.time() < deadline; time.sleep(0.2)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)             # the run and its geometry workers, as a kill would
        p.wait()
    killed_at = torch.load(run_dir / "last.pt", weights_only=False)["step"]
    assert 0 < killed_at < reference["step"], killed_at
    r = _run(["dvc", "repro"], smoke_repo)
    assert re.findall(r"Running stage '([^']+)'", r.stdout) == ["train@baseline"], r.stdout[-3000:]   # downstream: unchanged deps
    resumed = torch.load(run_dir / "last.pt", weights_only=False)
    assert resumed["step"] == reference["step"]
    assert {f.name: f.read_bytes() for f in run_dir.iterdir()} == reference_bytes                    # CPU: byte-identical
    assert "up to date" in _run(["dvc", "status"], smoke_repo).stdout
