#!/usr/bin/env bash
# Run the test suite: bash ops/test.sh [pytest args...]   (CI runs exactly this, via .ci/run)
# May install: .venv (python3 -m venv), the pinned packages of requirements.lock and the
#   project itself (pip, skipped while data/.venv-stamp matches), whatever ops/services.sh
#   installs (Debian's postgresql when missing), and Debian's chromium, fonts-wqy-zenhei and
#   fonts-noto-cjk when missing (the printable pages are checked in a real browser).
# With CI=true a test that needs a server fails instead of skipping, and so does a run whose
#   services could not be started.
set -euo pipefail
cd "$(dirname "$0")/.."

source ops/venv.sh

if ! bash ops/services.sh; then
  [[ ${CI:-} == true ]] && { echo "test: services could not be started (CI)" >&2; exit 1; }
  echo "test: WARNING: services not all up; tests that need them will fail" >&2
fi

# The printable pages are checked in headless Chromium; the contact card's PDF needs a CJK font
# (Noto Sans CJK first, WenQuanYi Zen Hei as the fallback the pages name).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || missing+=(fonts-wqy-zenhei)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if ((${#missing[@]})) && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "test: installing Debian's ${missing[*]} (the pages' browser check and the card's CJK font)"
  apt-cache show chromium >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    echo "test: WARNING: ${missing[*]} could not be installed; the browser and PDF tests will fail" >&2
fi

# The whole suite runs on two workers (one per core, each a whole test file at a time, so a
# module's fixtures are built once); pass any pytest arguments to run those as given instead.
# SMD_TEST_WORKERS=0 runs the whole suite in one process. (docs/decisions/040)
args=("$@")
workers=${SMD_TEST_WORKERS:-2}
if [[ ${#args[@]} -eq 0 && $workers != 0 ]]; then args=(-n "$workers" --dist loadfile); fi

rc=0
.venv/bin/python -m pytest "${args[@]}" || rc=$?
if [[ $rc == 5 ]]; then echo "test: ERROR: pytest collected no tests" >&2; rc=1; fi
exit "$rc"
