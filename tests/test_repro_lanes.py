"""scripts/repro_lanes.py, the pipeline scheduler of `make repro`, on a throwaway git+DVC repository whose stages
sleep and write when they ran: a -> (b, c) -> d, plus e@x (a foreach stage marked `meta: {lanes: alone}`) after a.
Two lanes overlap b and c, never the alone stage; one lane runs `dvc repro`'s order one at a time; a failure stops
the run before its downstream stage; a stage refused by DVC's lock is run again; SIGTERM stops the stages."""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "repro_lanes.py"
BIN = Path(sys.executable).parent          # the venv's bin: dvc, and the `python` the stages call
STAGES = ["a", "b", "c", "d", "e@x"]       # `dvc repro`'s order

STAMP = '''import sys, time
name, seconds = sys.argv[1], float(sys.argv[2])
start = time.time()
time.sleep(seconds)
if "fail" in sys.argv[3:]:
    sys.exit(3)
open(f"{name}.txt", "w").write(f"{start} {time.time()}\\n")
'''


def _stage(name, seconds, deps=(), fail=False):
    return {"cmd": f"python stamp.py {name} {seconds}" + (" fail" if fail else ""),
            "deps": ["stamp.py", *deps], "outs": [f"{name}.txt"]}


def pipeline(fail=None):
    "The stages; `fail` names one whose command exits 3."
    stages = {"a": _stage("a", 0.5),
              "b": _stage("b", 1.5, ["a.txt"], fail == "b"),
              "c": _stage("c", 1.5, ["a.txt"], fail == "c"),
              "d": _stage("d", 0.5, ["b.txt", "c.txt"], fail == "d")}
    e = _stage("e_${item}", 0.5, ["a.txt"])
    stages["e"] = {"foreach": ["x"], "do": {"meta": {"lanes": "alone"}, **e}}
    return {"stages": stages}


def _env():
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


def sh(cmd, cwd, check=True):
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
    assert not check or r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def make_repo(path: Path, fail=None) -> Path:
    path.mkdir()
    sh(["git", "init", "-q"], path)
    sh(["dvc", "init", "-q"], path)
    (path / "stamp.py").write_text(STAMP)
    (path / "dvc.yaml").write_text(yaml.safe_dump(pipeline(fail), sort_keys=False))
    return path


def lanes(repo, *args, check=True):
    return sh([sys.executable, str(SCRIPT), *args], repo, check=check)


def intervals(repo) -> dict[str, tuple[float, float]]:
    "When each stage's command ran, by address."
    out = {}
    for stage in STAGES:
        f = repo / f"{stage.replace('@', '_')}.txt"
        if f.exists():
            start, end = map(float, f.read_text().split())
            out[stage] = (start, end)
    return out


def overlap(x, y) -> bool:
    return x[0] < y[1] and y[0] < x[1]


def assert_clean(repo):
    "`dvc status` has nothing to do and dvc.lock records every stage."
    assert json.loads(sh(["dvc", "status", "--json"], repo).stdout) == {}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert sorted(lock) == sorted(STAGES)


def load_script():
    spec = importlib.util.spec_from_file_location("repro_lanes", SCRIPT)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_dry_plan(tmp_path):
    repo = make_repo(tmp_path / "r")
    r = lanes(repo, "--dry")
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [row[1] for row in rows] == STAGES
    assert [row[1] for row in rows if row[2] == "alone"] == ["e@x"]
    assert not (repo / "a.txt").exists() and not (repo / "dvc.lock").exists()


def test_two_lanes(tmp_path):
    repo = make_repo(tmp_path / "r")
    r = lanes(repo, "--lanes", "2")
    t = intervals(repo)
    assert sorted(t) == sorted(STAGES), r.stdout
    assert overlap(t["b"], t["c"]), t
    assert t["d"][0] >= max(t["b"][1], t["c"][1])
    assert not any(overlap(t["e@x"], t[s]) for s in STAGES if s != "e@x"), t
    assert_clean(repo)
    assert all((repo / ".cache" / "repro" / f"{s}.log").exists() for s in STAGES)
    again = lanes(repo, "--lanes", "2")         # nothing changed: DVC skips every stage
    assert again.stdout.count("skipped") == 2 * len(STAGES), again.stdout   # the done lines and the table


def test_one_lane_is_sequential(tmp_path):
    repo = make_repo(tmp_path / "r")
    lanes(repo, "--lanes", "1")
    t = intervals(repo)
    assert sorted(t, key=lambda s: t[s][0]) == STAGES
    spans = sorted(t.values())
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:])), t
    assert_clean(repo)


def test_failure_stops_downstream(tmp_path):
    repo = make_repo(tmp_path / "r", fail="c")
    r = lanes(repo, "--lanes", "2", check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "FAILED c" in out and "stage c failed" in r.stderr and "c.log" in r.stderr
    t = intervals(repo)
    assert "b" in t and "d" not in t, out       # b ran beside c; d, downstream of c, never started
    assert not (repo / ".cache" / "repro" / "d.log").exists()


def test_lock_refusal_is_retried(tmp_path):
    "A stage that DVC refuses because another process holds one of its paths (dvc/rwlock.py) runs again."
    repo = make_repo(tmp_path / "r")
    rwlock = repo / ".dvc" / "tmp" / "rwlock"
    rwlock.write_text(json.dumps({"write": {str(repo / "b.txt"): {"pid": os.getpid(), "cmd": "test"}}}))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--lanes", "2", "b"], cwd=repo, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:                    # the refusal, then this test lets go of b.txt
        lines.append(line)
        if line.startswith("[lanes] retry b"):
            rwlock.write_text("{}")
    assert proc.wait(timeout=60) == 0, "".join(lines)
    assert any(line.startswith("[lanes] retry b") for line in lines), "".join(lines)
    assert "b" in intervals(repo)


def test_interrupt_stops_the_stages(tmp_path):
    "SIGTERM to the script stops the running stage's process group and exits 130; DVC lets go of its locks."
    repo = make_repo(tmp_path / "r")
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("stamp.py b 1.5", "stamp.py b 60"))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "b"], cwd=repo, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("[lanes] start b"):
            break
    log = repo / ".cache" / "repro" / "b.log"
    while "stamp.py b 60" not in log.read_text():   # b's command is running
        time.sleep(0.1)
    proc.terminate()
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, out
    assert "stopped" in out and "b" not in intervals(repo)
    assert "failed to reproduce 'b'" in log.read_text()            # DVC saw its command stop and ended itself
    assert json.loads((repo / ".dvc" / "tmp" / "rwlock").read_text()) == {}


def test_lock_messages_are_dvcs():
    "The lock failures the script retries are DVC's own wording."
    from dvc.lock import FAILED_TO_LOCK_MESSAGE
    m = load_script()
    assert m.lock_failure(f"ERROR: failed to reproduce 'b': {FAILED_TO_LOCK_MESSAGE}")
    assert not m.lock_failure("ERROR: failed to reproduce 'b': failed to run: python stamp.py b, exited with 3")
    assert m.log_name("sub/dvc.yaml:train@x") == "sub_dvc.yaml_train@x.log"
