#!/usr/bin/env bash
# Installs what sparta builds against, from the distribution's packages (Debian 12, Ubuntu 24.04).
# vim-runtime provides the quickstart corpus (the Vim documentation); ocl-icd-opencl-dev is what
# oneDNN's CMake package looks for (its GPU runtime is OpenCL), though Debian only recommends it.
# The daemon (`sparta daemon`) needs cpp-httplib (its HTTP API), SQLite (its job store) and Chart.js
# (libjs-chart.js: the dashboard's charts, served from /usr/share/javascript/chart.js); chromium runs
# the dashboard's test headless.
# libopenmpi-dev and openmpi-bin: data parallelism on the CPU and `mpirun` launches (docs/distributed.md).
# Runs apt through sudo unless already root; does nothing when everything is present.
set -euo pipefail
packages=(build-essential cmake pkg-config libdnnl-dev ocl-icd-opencl-dev libtbb-dev libyaml-cpp-dev libboost-test-dev
          libhdf5-dev libcli11-dev libfmt-dev nlohmann-json3-dev libpng-dev vim-runtime
          libcpp-httplib-dev libsqlite3-dev libjs-chart.js libopenmpi-dev openmpi-bin)
# Ubuntu packages Chromium only as a snap, which does not run in containers: there the dashboard
# test skips (with a message) unless a chromium is installed some other way.
os_id=$( (. /etc/os-release 2>/dev/null && echo "${ID:-}") || true)
[ "$os_id" = "ubuntu" ] || packages+=(chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
