#!/usr/bin/env bash
# Creates .venv and installs nucseg with its test tools and Ray, from this project's files alone.
# elasticdeform is built from source: its registry wheel was built against numpy 1 and fails
# to import under numpy 2 ("numpy.core.multiarray failed to import").
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
# One install at a time: main.sh and test.sh started together would otherwise both reinstall
# into the same .venv, and one of them fails halfway. The second waits, then finds it done.
if command -v flock >/dev/null; then
  exec 9>.venv.lock
  flock 9
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.nucseg-installed-$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --no-binary elasticdeform -e ".[dev,ray]"
  rm -f .venv/.nucseg-installed-* && touch "$stamp"
fi
.venv/bin/python -c "import elasticdeform, keras, tensorflow; print('nucseg environment ready: tensorflow', tensorflow.__version__, '| keras', keras.__version__)"
