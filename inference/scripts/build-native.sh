#!/usr/bin/env bash
# Builds the optional native addons of inference/native: the JPEG 2000 decoder (OpenJPEG 2.5 via N-API) and
# the resize loops of the preprocessing contract (plain C).
#
# Exit status:
#   0  built and loadable, OR a prerequisite is missing (OpenJPEG headers/library, C compiler,
#      make, python3, node-gyp, Node headers): a warning goes to stderr and the product keeps
#      using the WebAssembly JPEG 2000 decoder.
#   1  the prerequisites are present but compiling/linking/loading the addon failed.
#
# Never downloads anything (node-gyp is pointed at the local Node headers; if there are none
# we stop rather than let node-gyp fetch them).
# CXR_SKIP_NATIVE_BUILD=1 skips the build entirely.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
inference_dir="$(cd "$here/.." && pwd)"
addon="$inference_dir/native/build/Release/cxr_openjpeg.node"
OPJ_INCLUDE_DIR=/usr/include/openjpeg-2.5

skip() {
  echo "build-native: WARNING: $1" >&2
  echo "build-native: WARNING: native addons not built; the WebAssembly JPEG 2000 decoder and the TypeScript resize will be used." >&2
  exit 0
}

if [[ "${CXR_SKIP_NATIVE_BUILD:-}" == "1" ]]; then
  skip "CXR_SKIP_NATIVE_BUILD=1"
fi

# --- prerequisites -----------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || skip "node not found on PATH"

have_openjpeg=1
if [[ ! -f "$OPJ_INCLUDE_DIR/openjpeg.h" ]]; then
  echo "build-native: WARNING: OpenJPEG 2.5 headers not found ($OPJ_INCLUDE_DIR/openjpeg.h; install libopenjp2-7-dev): JPEG 2000 stays with the WebAssembly decoder." >&2
  have_openjpeg=0
fi

cc_bin=""
for c in "${CC:-}" cc gcc clang; do
  if [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1; then cc_bin="$c"; break; fi
done
[[ -n "$cc_bin" ]] || skip "no C compiler found (cc/gcc/clang); install build-essential"
command -v make >/dev/null 2>&1 || skip "make not found; install build-essential"
command -v python3 >/dev/null 2>&1 || skip "python3 not found (node-gyp needs it)"

# The library itself (libopenjp2-7-dev provides the unversioned libopenjp2.so for linking).
if [[ "$have_openjpeg" == 1 ]] && ! echo 'int main(void){return 0;}' | "$cc_bin" -x c - -o /dev/null -lopenjp2 >/dev/null 2>&1; then
  skip "cannot link against -lopenjp2 (libopenjp2.so missing?); install libopenjp2-7-dev"
fi

node_gyp=""
if npm_bin="$(command -v npm 2>/dev/null)"; then
  candidate="$(dirname "$(readlink -f "$npm_bin")")/../node_modules/node-gyp/bin/node-gyp.js"
  if [[ -f "$candidate" ]]; then node_gyp="$candidate"; fi
fi
if [[ -z "$node_gyp" ]]; then
  skip "node-gyp not found (expected npm's bundled copy next to $(command -v npm 2>/dev/null || echo npm))"
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
  skip "Node.js headers not found under $node_prefix/include/node or ~/.cache/node-gyp/$node_version (no downloads here)"
fi

# --- build -------------------------------------------------------------------------------------
cd "$inference_dir"
echo "build-native: building native/ with $(basename "$node_gyp") (cc=$cc_bin, ${nodedir_args[*]:-node-gyp cache})" >&2
if ! node "$node_gyp" rebuild --directory native ${nodedir_args[@]+"${nodedir_args[@]}"} --loglevel=warn; then
  echo "build-native: ERROR: compiling the native addons failed (see above)." >&2
  exit 1
fi

if [[ "$have_openjpeg" == 1 ]] && ! node -e 'const m = require(process.argv[1]); if (typeof m.decode !== "function") process.exit(1); console.error(`build-native: OK: ${process.argv[1]} (OpenJPEG ${m.openjpegVersion}, threads ${m.threadSupport ? "yes" : "no"})`);' "$addon"; then
  echo "build-native: ERROR: the built addon $addon does not load." >&2
  exit 1
fi

resize_addon="$inference_dir/native/build/Release/cxr_resize.node"
if ! node -e 'const m = require(process.argv[1]); if (typeof m.sumAffine !== "function") process.exit(1); console.error(`build-native: OK: ${process.argv[1]}`);' "$resize_addon"; then
  echo "build-native: ERROR: the built addon $resize_addon does not load." >&2
  exit 1
fi

dcmjpeg_addon="$inference_dir/native/build/Release/cxr_dcmjpeg.node"
if [[ -f "$dcmjpeg_addon" ]]; then
  if ! node -e 'const m = require(process.argv[1]); if (typeof m.decodeLossless !== "function") process.exit(1); console.error(`build-native: OK: ${process.argv[1]} (DCMTK ${m.dcmtkVersion})`);' "$dcmjpeg_addon"; then
    echo "build-native: ERROR: the built addon $dcmjpeg_addon does not load." >&2
    exit 1
  fi
else
  echo "build-native: WARNING: DCMTK headers missing (install libdcmtk-dev): JPEG lossless stays with the WebAssembly decoder." >&2
fi
