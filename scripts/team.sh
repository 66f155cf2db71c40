#!/usr/bin/env bash
# The team server (团队服务器): JupyterHub on http://127.0.0.1:${KB_HUB_PORT:-8000}/ with its proxy,
# the knowledge-base service and the idle culler (team/jupyterhub_config.py lists every setting).
# Installs configurable-http-proxy into .team-node/ if missing; unless KB_DATABASE_URL names an
# existing PostgreSQL database, starts the project's own PostgreSQL cluster in .team-pg/ (KB_TEAM_PG;
# its own port on 127.0.0.1, run as an unprivileged user when we are root; kb.storage.pg_cluster) and
# stops it on exit; indexes the sample corpus into the team knowledge base if it is empty, then
# runs the hub until Ctrl+C, which stops every person's server too. `make team` runs `make setup` first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
BIN="$REPO/.venv/bin"
[ -x "$BIN/jupyterhub" ] || { echo "找不到 $BIN/jupyterhub：请先运行 make setup" >&2; exit 1; }

if [ ! -x .team-node/node_modules/.bin/configurable-http-proxy ]; then
  command -v npm >/dev/null || { echo "需要 npm 来安装 configurable-http-proxy：bash scripts/system_deps.sh（或 sudo apt-get install nodejs npm）" >&2; exit 1; }
  echo "安装 configurable-http-proxy 到 .team-node/"
  npm install --silent --no-audit --no-fund --prefix .team-node configurable-http-proxy@4
fi

if [ -n "${KB_DEMO_PASSWORD:-}" ] && [ ${#KB_DEMO_PASSWORD} -lt 8 ]; then
  echo "KB_DEMO_PASSWORD 太短：演示账号的密码至少 8 位" >&2; exit 2
fi
export KB_TEAM_DIR="${KB_TEAM_DIR:-$REPO/team_data}"
export KB_TEAM_HOME="${KB_TEAM_HOME:-$KB_TEAM_DIR/kb_data}"
mkdir -p "$KB_TEAM_DIR" && chmod 700 "$KB_TEAM_DIR"
if [ -z "${KB_DATABASE_URL:-}" ]; then
  KB_TEAM_PG="${KB_TEAM_PG:-$REPO/.team-pg}"
  KB_DATABASE_URL=$("$BIN/python" -m kb.storage.pg_cluster start "$KB_TEAM_PG") || exit 1
  export KB_DATABASE_URL
  trap '"$BIN/python" -m kb.storage.pg_cluster stop "$KB_TEAM_PG"' EXIT
  echo "团队数据库：PostgreSQL 集群 $KB_TEAM_PG（端口 $(cat "$KB_TEAM_PG/port")，仅本机）"
fi
documents=$("$BIN/kb" info --json --home "$KB_TEAM_HOME" 2>/dev/null \
  | "$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["documents"])' 2>/dev/null || echo 0)
if [ "$documents" = 0 ]; then
  echo "团队知识库是空的：把示例语料索引到 $KB_TEAM_HOME"
  "$BIN/kb" index corpus/ --home "$KB_TEAM_HOME" --quiet || [ $? -le 1 ]
  "$BIN/kb" topic import corpus/topics.yaml --home "$KB_TEAM_HOME"
fi

echo "协商研究助手 · 团队服务器：请在浏览器打开 http://127.0.0.1:${KB_HUB_PORT:-8000}/ （按 Ctrl+C 停止）"
if [ -n "${KB_DEMO_PASSWORD:-}" ]; then
  echo "演示账号：demo-staff（工作人员）、demo-member（委员）、demo-expert（专家），密码为 KB_DEMO_PASSWORD"
else
  echo "还没有账号？在登录页点「注册」，再由工作人员在 /hub/authorize 审核、在 /hub/admin 分组。"
  echo "第一位工作人员：KB_STAFF_USERS=用户名 make team，然后用这个名字注册（无需审核，自动进入 staff 组）。"
  echo "只想试用：KB_DEMO_PASSWORD=至少8位的密码 make team"
fi
cd "$KB_TEAM_DIR"
"$BIN/jupyterhub" -f "$REPO/team/jupyterhub_config.py"  # not exec: the trap stops our PostgreSQL afterwards
