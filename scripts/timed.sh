#!/usr/bin/env bash
# usage: timed.sh LABEL CMD...  runs CMD and prints how long it took, keeping its exit status.
label=$1; shift
start=$(date +%s)
"$@"; rc=$?
echo "[time] ${label}: $(( $(date +%s) - start )) s (exit ${rc})"
exit $rc
