#!/usr/bin/env bash
# Run the service: bash ops/run.sh [smd serve args...]
# May install: .venv (python3 -m venv), the pinned packages of requirements.lock and the
#   project itself (pip, skipped while data/.venv-stamp matches). Starts no servers itself.
set -euo pipefail
cd "$(dirname "$0")/.."

source ops/venv.sh

exec .venv/bin/smd serve "$@"
