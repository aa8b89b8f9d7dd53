#!/usr/bin/env bash
# Run the test suite: bash ops/test.sh [pytest args...]   (CI runs exactly this, via .ci/run)
# May install: .venv (python3 -m venv), the pinned packages of requirements.lock and the
#   project itself (pip, skipped while data/.venv-stamp matches), and whatever
#   ops/services.sh installs (Debian's postgresql when missing).
# With CI=true a test that needs a server fails instead of skipping, and so does a run whose
#   services could not be started.
set -euo pipefail
cd "$(dirname "$0")/.."

source ops/venv.sh

if ! bash ops/services.sh; then
  [[ ${CI:-} == true ]] && { echo "test: services could not be started (CI)" >&2; exit 1; }
  echo "test: WARNING: services not all up; tests that need them will fail" >&2
fi

rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [[ $rc == 5 ]]; then echo "test: ERROR: pytest collected no tests" >&2; rc=1; fi
exit "$rc"
