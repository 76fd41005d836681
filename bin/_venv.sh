# Sourced by bin/demo and bin/test: create .venv and install the project when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
STAMP=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$STAMP" ]; then
  echo "installing dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import aiohttp, wechatpy, sqlalchemy, alembic, apscheduler, qrcode, PIL, pytest_aiohttp" \
    || { echo "dependency install failed" >&2; exit 1; }
  rm -f .venv/.installed-*
  touch "$STAMP"
fi
# The sidebar's browser tests drive Debian's chromium (playwright cannot download browsers here).
# Posters need a CJK font (sharing/fonts.py); fonts-noto-cjk serves both.
if [ "$(id -u)" = 0 ]; then
  if ! command -v chromium >/dev/null || [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk
  fi
fi
