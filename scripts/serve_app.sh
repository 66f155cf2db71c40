#!/usr/bin/env bash
# Serve the tabbed app (notebooks/app.ipynb) with Voila, reachable from this machine only.
# PORT (default 8866), KB_HOME (default kb_data in the repository) and KB_MODEL are honoured;
# extra arguments go to voila. For JupyterLab with the notebooks instead: make lab.
# Each open tab has its own kernel; a tab closed without Voila hearing of it (a crashed browser,
# a laptop lid) leaves its kernel idle, and it is culled after KB_KERNEL_IDLE_SECONDS (default
# 600), checked every KB_CULL_EVERY_SECONDS (default 60). Kernels of open tabs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8866}"
IDLE="${KB_KERNEL_IDLE_SECONDS:-600}"
EVERY="${KB_CULL_EVERY_SECONDS:-60}"
[ "$EVERY" -le "$IDLE" ] || EVERY="$IDLE"
VOILA=.venv/bin/voila
[ -x "$VOILA" ] || { echo "找不到 $VOILA：请先运行 make setup" >&2; exit 1; }
echo "协商研究助手：请在浏览器打开 http://127.0.0.1:${PORT}/ （按 Ctrl+C 停止）"
exec "$VOILA" notebooks/app.ipynb --port="$PORT" --no-browser --Voila.ip=127.0.0.1 \
  --Voila.port_retries=0 --VoilaConfiguration.show_tracebacks=False \
  --MappingKernelManager.cull_idle_timeout="$IDLE" --MappingKernelManager.cull_interval="$EVERY" \
  --MappingKernelManager.cull_connected=False "$@"
