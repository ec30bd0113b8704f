#!/usr/bin/env bash
# Debian's prometheus package for the tests: it brings `promtool` (the alert rules'
# unit tests) and the `prometheus` server (the test that runs every dashboard and
# alert query against a real Prometheus). The package's own service is not started:
# the tests run their own server on a free port. Root installs it directly, anyone
# else through sudo.
set -euo pipefail
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
install() {
  "${as_root[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null
}
install 2>/dev/null || {
  "${as_root[@]}" apt-get update -q >/dev/null
  install
}
command -v prometheus
command -v promtool
