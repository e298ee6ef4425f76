#!/usr/bin/env bash
# usage: install.sh PYTHON VENV TORCH_SPEC KERNEL
# 1. create VENV (seeing the system's site-packages when the base Python already has torch,
#    e.g. on a GPU machine, so that its CUDA build is kept);
# 2. install torch with TORCH_SPEC unless the venv can already import it;
# 3. install ditgaze[dev] with a constraint pinning that torch, so nothing pulls another build;
# 4. register a Jupyter kernel inside the venv (papermill and `make lab` use it).
set -euo pipefail
py=$1; venv=$2; torch_spec=$3; kernel=$4
if [ ! -x "$venv/bin/python" ]; then
  if "$py" -c "import torch" 2>/dev/null; then
    echo "[install] base Python has torch $("$py" -c 'import torch;print(torch.__version__)'): venv sees it"
    "$py" -m venv --system-site-packages "$venv"
  else
    "$py" -m venv "$venv"
  fi
fi
pip="$venv/bin/python -m pip"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "[install] installing $torch_spec"
  $pip install -q "$torch_spec"
fi
tv=$("$venv/bin/python" -c "import torch;print(torch.__version__)" 2>/dev/null)
echo "torch==$tv" > "$venv/constraints.txt"
echo "[install] torch $tv pinned; installing ditgaze[dev]"
$pip install -q -c "$venv/constraints.txt" -e ".[dev]"
"$venv/bin/python" -m ipykernel install --sys-prefix --name "$kernel" --display-name "Python (ditgaze)" >/dev/null
$pip freeze --exclude-editable > "$venv/installed.txt"
echo "[install] $(wc -l < "$venv/installed.txt") packages; list in $venv/installed.txt"
