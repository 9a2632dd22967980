#!/usr/bin/env bash
# The container's install steps, shared by docker/Dockerfile (one layer per step, so that
# editing apps-hpc does not reinstall torch) and docker/apps-hpc-standalone.def.
#   docker/install.sh system|lock|flash-attn|app [SRC]
# Reads the pins from apps_hpc/data/versions.env (or the environment).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pins="$here/../apps_hpc/data/versions.env"
if [ -f "$pins" ]; then
  set -a
  # shellcheck disable=SC1090,SC1091  # the pins, package data of apps_hpc
  . "$pins"
  set +a
fi
venv=${VENV:-/opt/venv}

system() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" \
    "python${PYTHON_VERSION}-dev" ca-certificates curl git build-essential
  rm -rf /var/lib/apt/lists/*
  "python${PYTHON_VERSION}" -m venv "$venv"
  "$venv/bin/python" -m pip install --no-cache-dir --upgrade "pip<25" setuptools wheel
}

lock() {
  DS_BUILD_OPS=0 "$venv/bin/python" -m pip install --no-cache-dir --no-deps \
    -r "$here/../apps_hpc/data/requirements-cp310.lock"
}

flash_attn() {
  if [ -z "${FLASH_ATTN_SHA256:-}" ]; then
    echo "FLASH_ATTN_SHA256 is empty in apps_hpc/data/versions.env: run 'make flash-attn-sha' on a" \
      "machine that reaches the flash-attention release, then build again" >&2
    exit 1
  fi
  local wheel=/tmp/$FLASH_ATTN_WHEEL
  curl -fsSL -o "$wheel" "$FLASH_ATTN_URL"
  echo "$FLASH_ATTN_SHA256  $wheel" | sha256sum -c -
  "$venv/bin/python" -m pip install --no-cache-dir --no-deps "$wheel"
  rm -f "$wheel"
}

app() {
  local src=${1:-/opt/apps-hpc}
  "$venv/bin/python" -m pip install --no-cache-dir --no-deps -e "$src"
}

case "${1:-}" in
  system) system ;;
  lock) lock ;;
  flash-attn) flash_attn ;;
  app) app "${2:-}" ;;
  *) echo "usage: $0 system|lock|flash-attn|app [SRC]" >&2; exit 2 ;;
esac
