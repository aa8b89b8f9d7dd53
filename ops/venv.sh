# Sourced by ops/run.sh and ops/test.sh: create .venv and install the pinned packages and the
# project into it, skipped while data/.venv-stamp matches requirements.lock + pyproject.toml.
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
