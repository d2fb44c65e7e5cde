#!/usr/bin/env bash
# Sets up a fresh clone: Debian packages when missing, npm packages, the native addons, the build.
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# Debian packages: dcmtk (the X-ray unit in tests, and the encoders of cxr-datasets), dicom3tools (dciodvfy checks
# the files cxr-datasets makes), redis-server (queue), chromium (page tests),
# libopenjp2-7-dev (native JPEG 2000 decoder), libdcmtk-dev (native JPEG lossless decoder), build tools for the addons.
need=()
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/include/openjpeg-2.5/openjpeg.h ] || need+=(libopenjp2-7-dev)
[ -f /usr/include/dcmtk/dcmjpeg/djdijg16.h ] || need+=(libdcmtk-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    log "missing Debian packages (install them as root): ${need[*]}"
  fi
fi

# onnxruntime-node's install step would download CUDA files; its CPU runtime is in the package.
export ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log 'installing npm packages'
  # `npm install`, not `npm ci`: npm 11.19 calls this lockfile "out of sync" over other platforms' optional
  # rollup binaries it never installs; `npm install` follows the same lockfile and leaves it unchanged.
  npm install --no-audit --no-fund --loglevel=error
fi

native_built() {
  local addon
  for addon in cxr_openjpeg cxr_resize cxr_dcmjpeg; do
    local built="inference/native/build/Release/$addon.node"
    [ -f "$built" ] || return 1
    [ -z "$(find inference/native/src inference/native/binding.gyp -newer "$built" -print -quit)" ] || return 1
  done
}
if ! native_built; then
  log 'building the native addons (the WebAssembly decoders and TypeScript loops are used if this cannot build)'
  bash inference/scripts/build-native.sh
fi

log 'compiling TypeScript'
npx tsc -b
