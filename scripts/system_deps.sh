#!/usr/bin/env bash
# System packages the product needs beyond Python: CJK fonts (PDF export, screenshots),
# poppler (PDF → PNG checks), Chromium (browser test), LibreOffice Writer (Word → PDF check),
# Node.js and npm (configurable-http-proxy of the team server, installed by scripts/team.sh),
# PostgreSQL (the team server's database, started by scripts/team.sh in .team-pg/).
# Installs only what is missing, and only when it can (root + apt); otherwise says what to install.
set -u
need=()
fc-list 2>/dev/null | grep -qi "Noto Sans CJK\|Noto Serif CJK" || need+=(fonts-noto-cjk)
command -v pdftoppm >/dev/null || need+=(poppler-utils)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
command -v soffice >/dev/null || need+=(libreoffice-writer-nogui)
command -v npm >/dev/null || need+=(nodejs npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "安装系统依赖：${need[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || { echo "系统依赖安装失败：${need[*]}" >&2; exit 1; }
else
  echo "缺少系统软件包：${need[*]}（请用 sudo apt-get install ${need[*]} 安装；PDF 导出、浏览器测试和团队服务器需要它们）" >&2
fi
