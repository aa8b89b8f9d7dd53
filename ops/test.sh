#!/usr/bin/env bash
# Run the test suite: bash ops/test.sh [pytest args...]   (CI runs exactly this, via .ci/run)
# May install: .venv (python3 -m venv), the pinned packages of requirements.lock and the
#   project itself (pip, skipped while data/.venv-stamp matches), and whatever
#   ops/services.sh installs (Debian's postgresql when missing).
# With CI=true a test that needs a server fails instead of skipping, and so does a run whose
#   services could not be started.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- venv (same block in ops/run.sh) ---
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

if ! bash ops/services.sh; then
  [[ ${CI:-} == true ]] && { echo "test: services could not be started (CI)" >&2; exit 1; }
  echo "test: WARNING: services not all up; tests that need them will fail" >&2
fi

rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [[ $rc == 5 ]]; then echo "test: ERROR: pytest collected no tests" >&2; rc=1; fi
exit "$rc"
