#!/usr/bin/env bash
# Serve the tabbed app (notebooks/app.ipynb) with Voila, reachable from this machine only.
# PORT (default 8866), KB_HOME (default kb_data in the repository) and KB_MODEL are honoured;
# extra arguments go to voila. For JupyterLab with the notebooks instead: make lab.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8866}"
VOILA=.venv/bin/voila
[ -x "$VOILA" ] || { echo "找不到 $VOILA：请先运行 make setup" >&2; exit 1; }
echo "协商研究助手：请在浏览器打开 http://127.0.0.1:${PORT}/ （按 Ctrl+C 停止）"
exec "$VOILA" notebooks/app.ipynb --port="$PORT" --no-browser --Voila.ip=127.0.0.1 \
  --Voila.port_retries=0 --VoilaConfiguration.show_tracebacks=False "$@"
