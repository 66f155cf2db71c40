#!/usr/bin/env bash
# The whole test suite (fast and slow). pytest's exit 5 ("no tests collected") is a failure here.
set -u
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$status"
