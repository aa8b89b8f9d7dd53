#!/usr/bin/env bash
# Run the service: bash ops/run.sh [smd serve args...]
# May install: .venv (python3 -m venv), the pinned packages of requirements.lock and the
#   project itself (pip, skipped while data/.venv-stamp matches). Starts no servers itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- venv (same block in ops/test.sh) ---
stamp=data/.venv-stamp
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"; python3 -m venv .venv; rm -f "$stamp"
fi
if [[ $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
  echo "setup: installing requirements.lock and the project into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  mkdir -p data && echo "$want" >"$stamp"
fi

exec .venv/bin/smd serve "$@"
