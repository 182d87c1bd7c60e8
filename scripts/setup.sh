#!/usr/bin/env bash
# Create or refresh the virtual environment (.venv) and install safenet with every plugin in
# plugins/ and envs/ (editable), pinned by constraints.txt (torch==2.13.0: the local CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SAFENET_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
# setuptools: the build backend of our distributions (tests build them without isolation)
$PIP install -q "setuptools>=77" wheel
# torch first, pinned, so nothing later pulls a CUDA build
$PIP install -q -c constraints.txt "torch==2.13.0"
targets=(-e ".[test,tensorboard,ray]")
for d in envs/*/ plugins/*/; do
  [ -f "$d/pyproject.toml" ] || continue
  # distributions that declare a [test] extra get it (test-only dependencies such as gymnasium-robotics)
  if grep -qE '^test *=' "$d/pyproject.toml"; then targets+=(-e "${d%/}[test]"); else targets+=(-e "$d"); fi
done
$PIP install -q -c constraints.txt "${targets[@]}"
echo "safenet installed in $VENV with: $(ls -d envs/*/ plugins/*/ 2>/dev/null | tr '\n' ' ')"
