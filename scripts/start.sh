#!/usr/bin/env bash
# Sets up and starts the system on embedded defaults: the edge agent with the shipped model, fed the shared
# radiographs by DCMTK's storescu so the page shows findings at once. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

data="${CXR_DATA_DIR:-.data}"
model="${CXR_MODEL:-../shared/models/squeezenet-pneumonia-peds}"
dicom_port="${CXR_DICOM_PORT:-11112}"
http_port="${CXR_HTTP_PORT:-8080}"
mkdir -p "$data"

node edge-agent/bin/cxr-edge.js --data-dir "$data/edge" --model "$model" \
  --dicom-port "$dicom_port" --http-port "$http_port" &
edge=$!
trap 'kill -TERM "$edge" 2>/dev/null; wait "$edge" 2>/dev/null' INT TERM EXIT

for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$http_port/api/health" >/dev/null 2>&1 && break
  kill -0 "$edge" 2>/dev/null || { echo 'start: the edge agent did not start' >&2; exit 1; }
  sleep 0.5
done

echo "== sending the demo radiographs to CXR_EDGE@$dicom_port"
node edge-agent/bin/cxr-edge.js send-demo --dicom-port "$dicom_port" || true
cat <<MSG

  The radiographer's page: http://localhost:$http_port/
  Send more images:        storescu -aec CXR_EDGE 127.0.0.1 $dicom_port FILE.dcm
                           or copy files into $data/edge/incoming/
  Stop:                    Ctrl-C

MSG
wait "$edge"
