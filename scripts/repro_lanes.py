"""Reproduce the DVC pipeline with several stages running at once ("lanes").

`dvc repro` runs one stage at a time. Each training/evaluation stage of the ditgaze pipeline keeps about one
core busy, so on a two-core machine plain `dvc repro` leaves a core idle most of the time. This script runs the
same stages in the same order as `dvc repro`, but starts a stage as soon as every stage upstream of it has
finished, with up to --lanes stages running at once:

    python scripts/repro_lanes.py [--lanes 2] [--logs .cache/repro] [--dry] [TARGET ...]

- The plan comes from DVC itself: the pipeline graph, the targets (default: every stage of dvc.yaml) and their
  upstream stages, in the order `dvc repro` would run them. Among the stages that are ready, that order decides.
- Each stage runs as `dvc repro --single-item <address>` in its own process group; its output goes to
  `<logs>/<address>.log`, never to the terminal (two stages interleaved would be unreadable).
- A stage whose dvc.yaml entry says `meta: {lanes: alone}` (it keeps both cores busy itself) runs with nothing
  beside it.
- A failed stage stops the run: nothing new starts, the running stages finish, the failed stage's log tail is
  printed and its exit code is the script's. A stage that failed only because DVC's lock was busy is retried.
- `--lanes 1` runs the stages one at a time in `dvc repro`'s order.

Standard library and DVC only: it is a tool of the repository, not part of the ditgaze package.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Every stage runs with the DVC of this interpreter, the one that planned it. `--wait-for-lock`: a stage
# waits for the repo lock instead of failing after DVC's 3 s default, both when it starts and when it
# records its results after its command ran (a failure there would throw away a finished run).
DVC = [sys.executable, "-m", "dvc", "--wait-for-lock"]

# DVC's messages when another DVC process holds a lock: the repo lock (dvc/lock.py, FAILED_TO_LOCK_MESSAGE)
# and a path held by another stage (dvc/rwlock.py). A stage that failed with one of them is run again.
LOCK_MESSAGES = ("Unable to acquire lock", "is busy, it is being blocked by")
LOCK_RETRIES = 4
LOCK_RETRY_WAIT_S = 5.0
# what `dvc repro` logs for a stage it did not run (dvc/stage/__init__.py, Stage.reproduce)
UNCHANGED_MESSAGE = "didn't change, skipping"
POLL_S = 0.2
STOP_SEQUENCE = ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))   # (signal, grace in s)
TAIL_LINES = 20
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Step:
    "One stage of the plan."
    index: int              # place in `dvc repro`'s order
    address: str            # what `dvc repro` takes: `train@baseline`, `data.dvc`
    upstream: list[str]     # addresses of the planned stages it depends on
    alone: bool             # `meta: {lanes: alone}`: runs with nothing beside it
    log: Path


@dataclass
class Running:
    step: Step
    proc: subprocess.Popen
    start: float
    log_offset: int         # where this attempt's output starts in the log (retries append)
    attempt: int


@dataclass
class Outcome:
    status: str             # done | skipped | failed | stopped | not run
    seconds: float = 0.0
    rc: int = 0


@dataclass
class State:
    pending: list[Step]
    running: dict[str, Running] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)   # retries wait until then
    failed: Step | None = None
    stop: str | None = None         # the name of the signal that asked to stop


# ---------------------------------------------------------------- the plan


def log_name(address: str) -> str:
    "A file name for a stage address (`dir/dvc.yaml:train@x` has characters unfit for one)."
    return re.sub(r"[^A-Za-z0-9@._-]", "_", address) + ".log"


def is_alone(stage) -> bool:
    "dvc.yaml's free-form `meta` of the stage says `lanes: alone`."
    meta = getattr(stage, "meta", None)
    return isinstance(meta, dict) and meta.get("lanes") == "alone"


def load_plan(targets: list[str], logs: Path) -> list[Step]:
    "The stages `dvc repro TARGET...` would run, in its order, with their upstream stages and `alone` marks."
    # the same functions `dvc repro` plans with: frozen stages cut from their upstream, targets + upstream,
    # depth-first post-order (the graph's edges go from a stage to the stages it depends on)
    from dvc.dvcfile import PROJECT_FILE
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with Repo() as repo:
        graph = get_active_graph(repo.index.graph)
        stages = collect_stages(repo, targets or [PROJECT_FILE])
        order = plan_repro(graph, stages)
        planned = set(order)
        return [Step(index=i, address=s.addressing,
                     upstream=[u.addressing for u in graph.successors(s) if u in planned],
                     alone=is_alone(s),
                     log=logs / log_name(s.addressing))
                for i, s in enumerate(order)]


def print_plan(plan: list[Step], lanes: int) -> None:
    print(f"[lanes] plan: {len(plan)} stages, {lanes} lanes, in this order when ready:")
    for i, step in enumerate(plan, 1):
        mark = "alone" if step.alone else ""
        after = ", ".join(step.upstream) or "-"
        print(f"  {i:3d}  {step.address:30s} {mark:5s}  after: {after}")


# ---------------------------------------------------------------- one stage


def start(step: Step, attempt: int) -> Running:
    "Launch `dvc repro --single-item` for the stage in its own process group, output to its log."
    step.log.parent.mkdir(parents=True, exist_ok=True)
    with open(step.log, "ab" if attempt > 1 else "wb") as log:
        if attempt > 1:
            log.write(f"\n[lanes] attempt {attempt}\n".encode())
        offset = log.tell()
        proc = subprocess.Popen([*DVC, "repro", "--single-item", step.address], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    alone = " (alone)" if step.alone else ""
    retry = f" (attempt {attempt})" if attempt > 1 else ""
    print(f"[lanes] start {step.address}{alone}{retry}  log: {step.log}", flush=True)
    return Running(step, proc, time.monotonic(), offset, attempt)


def read_log(run: Running) -> str:
    "This attempt's output."
    with open(run.step.log, "rb") as f:
        f.seek(run.log_offset)
        return f.read().decode(errors="replace")


def exit_code(rc: int) -> int:
    "A Popen return code as a shell would report it (killed by signal N: 128 + N)."
    return 128 - rc if rc < 0 else rc


def lock_failure(text: str) -> bool:
    "DVC gave up because another DVC process held a lock, not because the stage failed."
    return any(m in text for m in LOCK_MESSAGES)


def tail(path: Path, n: int = TAIL_LINES) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


# ---------------------------------------------------------------- the scheduler


def ready(step: Step, state: State, now: float) -> bool:
    "Every upstream stage ended well, and a retry's wait is over."
    ok = ("done", "skipped")
    return (all(u in state.outcomes and state.outcomes[u].status in ok for u in step.upstream)
            and now >= state.not_before.get(step.address, 0.0))


def launch_ready(state: State, lanes: int) -> None:
    "Fill free lanes with ready stages in plan order; an `alone` stage waits for empty lanes and runs by itself."
    now = time.monotonic()
    for step in list(state.pending):
        if len(state.running) >= lanes or any(r.step.alone for r in state.running.values()):
            return
        if not ready(step, state, now):
            continue
        if step.alone and state.running:
            return          # nothing overtakes it: the next stage to start is this one
        state.pending.remove(step)
        attempt = state.attempts[step.address] = state.attempts.get(step.address, 0) + 1
        state.running[step.address] = start(step, attempt)


def finish(run: Running, rc: int, state: State) -> None:
    "Record a stage that ended: done, skipped, queued again after a lock failure, or failed."
    step, seconds = run.step, time.monotonic() - run.start
    text = read_log(run)
    if rc == 0:
        status = "skipped" if UNCHANGED_MESSAGE in text else "done"
        state.outcomes[step.address] = Outcome(status, seconds)
        print(f"[lanes] done {step.address} {'skipped ' if status == 'skipped' else ''}{seconds:.0f} s", flush=True)
    elif lock_failure(text) and run.attempt <= LOCK_RETRIES and state.failed is None:
        state.not_before[step.address] = time.monotonic() + LOCK_RETRY_WAIT_S
        state.pending = sorted([*state.pending, step], key=lambda s: s.index)
        print(f"[lanes] retry {step.address} in {LOCK_RETRY_WAIT_S:.0f} s: DVC's lock was busy "
              f"(attempt {run.attempt} of {LOCK_RETRIES + 1})", flush=True)
    else:
        state.outcomes[step.address] = Outcome("failed", seconds, exit_code(rc))
        print(f"[lanes] FAILED {step.address} exit {exit_code(rc)} after {seconds:.0f} s", flush=True)
        state.failed = state.failed or step


def reap(state: State) -> None:
    for address, run in list(state.running.items()):
        rc = run.proc.poll()
        if rc is not None:
            del state.running[address]
            finish(run, rc, state)


def schedule(state: State, lanes: int) -> None:
    "Run until every stage ended, or a stage failed and the running ones finished."
    while state.running or (state.pending and state.failed is None):
        if state.stop:
            return
        if state.failed is None:
            launch_ready(state, lanes)
        time.sleep(POLL_S)
        reap(state)


def terminate(state: State) -> None:
    """Stop the running stages' process groups: SIGINT first, as Ctrl-C stops `dvc repro` (the command stops,
    DVC lets go of its locks), then SIGTERM, then SIGKILL for whatever is still there after a grace time."""
    reap(state)                     # those that just ended are done (or failed), not stopped
    runs = list(state.running.values())
    for run in runs:
        print(f"[lanes] stopping {run.step.address}", flush=True)
    for sig, grace in STOP_SEQUENCE:
        alive = [run for run in runs if run.proc.poll() is None]
        for run in alive:
            _signal_group(run.proc, sig)
        deadline = time.monotonic() + grace
        for run in alive:
            try:
                run.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for run in runs:
        state.outcomes[run.step.address] = Outcome("stopped", time.monotonic() - run.start, 130)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)    # start_new_session: the group's id is the child's pid
    except ProcessLookupError:
        pass


def on_stop_signals(state: State) -> None:
    "SIGINT/SIGTERM only mark the state: the scheduler loop stops the stages (no exception between two steps)."
    def handler(signum, frame):
        state.stop = signal.Signals(signum).name
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


# ---------------------------------------------------------------- report


def print_table(plan: list[Step], state: State, wall: float) -> None:
    print(f"[lanes] {'stage':30s} {'status':8s} {'seconds':>8s}")
    for step in plan:
        o = state.outcomes.get(step.address)
        seconds = f"{o.seconds:8.1f}" if o else f"{'-':>8s}"
        print(f"[lanes] {step.address:30s} {o.status if o else 'not run':8s} {seconds}")
    total = sum(o.seconds for o in state.outcomes.values())
    print(f"[lanes] wall time {wall:.1f} s (stages' seconds in all {total:.1f} s)", flush=True)


def report_failure(step: Step, outcome: Outcome) -> None:
    print(f"\n[lanes] stage {step.address} failed (exit {outcome.rc}); the last {TAIL_LINES} lines of its log:",
          file=sys.stderr)
    print(tail(step.log), file=sys.stderr)
    print(f"[lanes] full log: {step.log}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", metavar="TARGET", help="stages to reproduce with their upstream "
                   "(default: every stage of dvc.yaml), as `dvc repro` takes them")
    p.add_argument("--lanes", type=int, default=2, help="stages running at once (default 2)")
    p.add_argument("--logs", type=Path, default=Path(".cache/repro"), help="folder of the stages' logs")
    p.add_argument("--dry", action="store_true", help="print the plan and run nothing")
    args = p.parse_args(argv)
    if args.lanes < 1:
        p.error("--lanes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from dvc.exceptions import DvcException

    args = parse_args(argv)
    try:
        plan = load_plan(args.targets, args.logs)
    except KeyboardInterrupt:
        return 130
    except DvcException as e:       # an unknown target, a broken dvc.yaml: DVC's one-line message
        print(f"[lanes] error: {e}", file=sys.stderr)
        return 2
    if args.dry:
        print_plan(plan, args.lanes)
        return 0

    print(f"[lanes] {len(plan)} stages, {args.lanes} lanes, logs in {args.logs}/", flush=True)
    state, t0 = State(pending=list(plan)), time.monotonic()
    on_stop_signals(state)
    schedule(state, args.lanes)
    if state.stop:
        print(f"\n[lanes] {state.stop}: stopping", flush=True)
        terminate(state)
    print_table(plan, state, time.monotonic() - t0)
    if state.stop:
        return 130
    if state.failed:
        outcome = state.outcomes[state.failed.address]
        report_failure(state.failed, outcome)
        return outcome.rc or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
