#!/usr/bin/env bash
# The whole test suite on a fresh clone: set up, lint, type-check, then every test against real data and servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo '== lint'
npx eslint --max-warnings 0 .
echo '== type-check (sources and tests)'
npx tsc -p tsconfig.check.json --noEmit
echo '== tests'
report="$(mktemp -t cxr-vitest-XXXXXX.json)"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI reads: "N passed, N failed".
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
rm -f "$report"
exit "$status"
