#!/usr/bin/env bash
# usage: sync_check.sh BIN   fails when nbdev_export would change ditgaze/ or nbdev_clean a notebook.
set -uo pipefail
bin=$1
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "[sync-check] not a git checkout: cannot compare, skipped"; exit 0
fi
before=$(git status --porcelain -- ditgaze nbs)
"$bin/nbdev_export" || { echo "[sync-check] nbdev_export failed"; exit 1; }
"$bin/nbdev_clean" || { echo "[sync-check] nbdev_clean failed"; exit 1; }
after=$(git status --porcelain -- ditgaze nbs)
if [ "$before" != "$after" ]; then
  echo "[sync-check] FAILED: nbdev_export/nbdev_clean changed files. ditgaze/ is generated from nbs/:"
  echo "edit the notebook, run 'make export', and commit both. Changed:"
  git status --short -- ditgaze nbs
  git --no-pager diff --stat -- ditgaze nbs
  exit 1
fi
echo "[sync-check] ditgaze/ matches nbs/ and notebooks are clean"
