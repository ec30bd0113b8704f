#!/usr/bin/env bash
# Debian's chromium for the console's browser tests (Playwright drives it by its
# executable path; no test tool downloads a browser). Root installs it directly,
# anyone else through sudo.
set -euo pipefail
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
  "${as_root[@]}" apt-get update -q >/dev/null
  "${as_root[@]}" apt-get install -y --no-install-recommends chromium >/dev/null
}
command -v chromium
