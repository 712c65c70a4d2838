#!/usr/bin/env bash
# Creates .venv (once) and installs prismrag with every built-in plugin and the test tools.
# torch is named explicitly so pip never swaps in another build; override with PRISMRAG_TORCH.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PRISMRAG_VENV:-.venv}
TORCH=${PRISMRAG_TORCH:-"torch==2.13.0 torchvision==0.28.0"}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ ! -f "$VENV/.prismrag-installed" ] || [ pyproject.toml -nt "$VENV/.prismrag-installed" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet $TORCH -e ".[all,test]"
  touch "$VENV/.prismrag-installed"
fi
