#!/usr/bin/env bash
# System packages the test suite uses. Installs them from Debian when missing and running as root;
# otherwise prints how to install them (the tests that need them then skip and say so).
set -u
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Browser tests drive Debian's Chromium through Playwright (no browser downloads).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "missing: ${need[*]} — install with: sudo apt-get install ${need[*]}" >&2
fi
exit 0
