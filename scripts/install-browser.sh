#!/bin/sh
# Headless Chromium and ChromeDriver from Debian, for tests/test_ui_browser.py.
# Needs root (CI and the dev machines run as root); does nothing if already there.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "not root: install chromium and chromium-driver yourself" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
