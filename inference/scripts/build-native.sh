#!/usr/bin/env bash
# Builds the optional native decoders (inference/native, N-API, plain C):
#   cxr_openjpeg.node  JPEG 2000 with the system OpenJPEG 2.5 (Debian libopenjp2-7-dev)
#   cxr_charls.node    JPEG-LS with the system CharLS 2.x (Debian libcharls-dev)
# Each is built when its library's headers are present, independently of the other.
#
# Exit status:
#   0  every decoder whose library is present is built and loadable; a decoder whose library is
#      missing, or all of them when a shared prerequisite (C compiler, make, python3, node-gyp,
#      Node headers) is missing, is skipped with a warning on stderr, and the product keeps using
#      the WebAssembly decoder for that format.
#   1  the prerequisites are present but compiling/linking/loading an addon failed.
#
# Never downloads anything (node-gyp is pointed at the local Node headers; if there are none
# we stop rather than let node-gyp fetch them).
# CXR_SKIP_NATIVE_BUILD=1 skips the build entirely.
# CXR_OPENJPEG_INCLUDE_DIR (default /usr/include/openjpeg-2.5) and CXR_CHARLS_INCLUDE_DIR (default
# /usr/include, holding charls/charls.h) say where the headers are.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
inference_dir="$(cd "$here/.." && pwd)"
release_dir="$inference_dir/native/build/Release"
OPJ_INCLUDE_DIR="${CXR_OPENJPEG_INCLUDE_DIR:-/usr/include/openjpeg-2.5}"
CHARLS_INCLUDE_DIR="${CXR_CHARLS_INCLUDE_DIR:-/usr/include}"

warn() { echo "build-native: WARNING: $1" >&2; }

skip_all() {
  warn "$1"
  warn "native decoders not built; the WebAssembly JPEG 2000 and JPEG-LS decoders will be used."
  exit 0
}

if [[ "${CXR_SKIP_NATIVE_BUILD:-}" == "1" ]]; then
  skip_all "CXR_SKIP_NATIVE_BUILD=1"
fi

# --- shared prerequisites ----------------------------------------------------------------------
command -v node >/dev/null 2>&1 || skip_all "node not found on PATH"

cc_bin=""
for c in "${CC:-}" cc gcc clang; do
  if [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1; then cc_bin="$c"; break; fi
done
[[ -n "$cc_bin" ]] || skip_all "no C compiler found (cc/gcc/clang); install build-essential"
command -v make >/dev/null 2>&1 || skip_all "make not found; install build-essential"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not found (node-gyp needs it)"

node_gyp=""
if npm_bin="$(command -v npm 2>/dev/null)"; then
  candidate="$(dirname "$(readlink -f "$npm_bin")")/../node_modules/node-gyp/bin/node-gyp.js"
  if [[ -f "$candidate" ]]; then node_gyp="$candidate"; fi
fi
if [[ -z "$node_gyp" ]]; then
  skip_all "node-gyp not found (expected npm's bundled copy next to $(command -v npm 2>/dev/null || echo npm))"
fi

# Local Node headers: the prefix of the running node (/usr on Debian), else node-gyp's cache.
node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
node_version="$(node -p 'process.versions.node')"
nodedir_args=()
if [[ -f "$node_prefix/include/node/node_api.h" ]]; then
  nodedir_args=(--nodedir="$node_prefix")
elif [[ -f "${HOME:-/root}/.cache/node-gyp/$node_version/include/node/node_api.h" ]]; then
  nodedir_args=()
else
  skip_all "Node.js headers not found under $node_prefix/include/node or ~/.cache/node-gyp/$node_version (no downloads here)"
fi

# Whether the C compiler finds the header and links the library.
library_usable() { # header-dir header lib
  [[ -f "$1/$2" ]] || return 1
  printf '#include <%s>\nint main(void){return 0;}\n' "$2" |
    "$cc_bin" -x c - -I"$1" -o /dev/null "-l$3" >/dev/null 2>&1
}

# --- which decoders ----------------------------------------------------------------------------
with_openjpeg=false
if library_usable "$OPJ_INCLUDE_DIR" openjpeg.h openjp2; then
  with_openjpeg=true
else
  warn "OpenJPEG 2.5 not usable ($OPJ_INCLUDE_DIR/openjpeg.h, -lopenjp2); install libopenjp2-7-dev"
  warn "native JPEG 2000 decoder not built; the WebAssembly decoder will be used."
fi
with_charls=false
if library_usable "$CHARLS_INCLUDE_DIR" charls/charls.h charls; then
  with_charls=true
else
  warn "CharLS not usable ($CHARLS_INCLUDE_DIR/charls/charls.h, -lcharls); install libcharls-dev"
  warn "native JPEG-LS decoder not built; the WebAssembly decoder will be used."
fi
if [[ "$with_openjpeg" == false && "$with_charls" == false ]]; then
  # Nothing to build, but an addon left from an earlier build would no longer match its library.
  rm -f "$release_dir/cxr_openjpeg.node" "$release_dir/cxr_charls.node"
  exit 0
fi

# --- build -------------------------------------------------------------------------------------
cd "$inference_dir"
echo "build-native: building native/ (openjpeg=$with_openjpeg, charls=$with_charls) with $(basename "$node_gyp") (cc=$cc_bin, ${nodedir_args[*]:-node-gyp cache})" >&2
# `rebuild` starts from an empty build/, so a decoder skipped now leaves no stale addon behind.
if ! node "$node_gyp" rebuild --directory native ${nodedir_args[@]+"${nodedir_args[@]}"} --loglevel=warn \
  --with_openjpeg="$with_openjpeg" --openjpeg_include_dir="$OPJ_INCLUDE_DIR" \
  --with_charls="$with_charls" --charls_include_dir="$CHARLS_INCLUDE_DIR"; then
  echo "build-native: ERROR: compiling the native decoders failed (see above)." >&2
  exit 1
fi

if [[ "$with_openjpeg" == true ]] &&
  ! node -e 'const m = require(process.argv[1]); if (typeof m.decode !== "function") process.exit(1); console.error(`build-native: OK: ${process.argv[1]} (OpenJPEG ${m.openjpegVersion}, threads ${m.threadSupport ? "yes" : "no"})`);' "$release_dir/cxr_openjpeg.node"; then
  echo "build-native: ERROR: the built addon $release_dir/cxr_openjpeg.node does not load." >&2
  exit 1
fi
if [[ "$with_charls" == true ]] &&
  ! node -e 'const m = require(process.argv[1]); if (typeof m.decode !== "function") process.exit(1); console.error(`build-native: OK: ${process.argv[1]} (CharLS ${m.charlsVersion})`);' "$release_dir/cxr_charls.node"; then
  echo "build-native: ERROR: the built addon $release_dir/cxr_charls.node does not load." >&2
  exit 1
fi
