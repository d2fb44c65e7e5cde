#!/usr/bin/env bash
# Installs the Python peer's Debian packages when missing (no pip: these machines reach no Python registry).
# Safe to run again: it installs nothing when every module imports.
set -euo pipefail

log() { printf '\033[1mpeer setup:\033[0m %s\n' "$*" >&2; }

# module to import -> Debian package that provides it
declare -A package_of=(
  [torch]=python3-torch
  [torchvision]=python3-torchvision
  [pydicom]=python3-pydicom
  [gdcm]=python3-gdcm
  [cv2]=python3-opencv
  [numpy]=python3-numpy
  [onnx]=python3-onnx
)

# Debian's own interpreter: the packages install there, and a python3 earlier on PATH (pyenv) cannot see them.
python=/usr/bin/python3
need=()
[ -x "$python" ] || need+=(python3)
for module in "${!package_of[@]}"; do
  [ -x "$python" ] && "$python" -c "import ${module}" >/dev/null 2>&1 || need+=("${package_of[$module]}")
done
if [ ${#need[@]} -eq 0 ]; then
  log 'every package is installed'
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  log "missing Debian packages (install them as root): ${need[*]}"
  exit 1
fi
log "installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
