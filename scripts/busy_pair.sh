#!/usr/bin/env bash
# A stage alone and beside one busy process: the Gaussian stage (100 steps) and the renderer stage (60 steps),
# on the data and checkpoints of a finished `make repro` in folder $1. Prints seconds per call, idle then busy.
#   bash scripts/busy_pair.sh /path/to/finished/clone
set -euo pipefail
R=$(cd "$1" && pwd); W=$(mktemp -d); BIN=$R/.venv/bin
cat > $W/p.yaml <<YAML
profile: default
profiles: {default: {}}
gaussians: {dataset: $R/data/synthetic, out_dir: $W/g, optim: {steps: 100, ckpt_every: 100}}
train: {dataset: $R/data/synthetic, gaussians: $R/runs/gaussians/last.pt, loss_estimator: $R/runs/estimators/gaze_loss.pt,
        runs_dir: $W/r, optim: {steps: 60, ckpt_every: 60}, loss: {gaze_start: 0}}
runs: {b: {}}
YAML
cd $W
timed() { rm -rf $W/g $W/r; local s=$(date +%s.%N); $BIN/ditgaze --params p.yaml --no-progress --reports $W/rep "$@" > /dev/null; echo "$(date +%s.%N) - $s" | bc; }
for mode in idle busy; do
  if [ $mode = busy ]; then python3 -c "while True: pass" & BP=$!; fi
  echo "$mode: gaussians 100 steps $(timed gaussians) s, train 60 steps $(timed train b) s"
  if [ $mode = busy ]; then kill $BP; fi
done
rm -rf $W
