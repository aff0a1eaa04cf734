#!/usr/bin/env bash
# Run every test: lint, then pytest over every package's test/ folder. Expects `source env.sh`.
# pytest's exit code 5 ("no tests collected") is an error here, never a silent success.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
echo "== lint (ruff, ament_flake8/pep257 rules) =="
ruff check --no-cache . || { echo "lint failed"; exit 1; }
echo "== pytest =="
python -m pytest -p no:cacheprovider "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: treating as failure"
  exit 1
fi
exit "$rc"
