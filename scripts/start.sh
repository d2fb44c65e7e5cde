#!/usr/bin/env bash
# Sets up and starts the whole system on embedded defaults, on this machine: a local Redis, a folder as the
# object store, the gateway, the edge agent with the shipped model linked to it, and the shared radiographs sent
# by DCMTK's storescu as the X-ray unit would. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

data="${CXR_DATA_DIR:-.data}"
case "$data" in /*) ;; *) data="$(pwd)/$data" ;; esac
model="${CXR_MODEL:-../shared/models/squeezenet-pneumonia-peds}"
dicom_port="${CXR_DICOM_PORT:-11112}"
edge_port="${CXR_HTTP_PORT:-8080}"
gateway_port="${CXR_GATEWAY_PORT:-8443}"
redis_port="${CXR_REDIS_PORT:-6380}"
redis="redis://127.0.0.1:$redis_port"
store="$data/store"
# Patient images, accounts and the registry's private key live under $data: only this user reads them.
umask 077
mkdir -p "$data/redis" "$store"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup INT TERM EXIT

wait_http() {
  for _ in $(seq 1 120); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "start: $1 did not answer" >&2
  return 1
}

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$data/redis" --appendonly yes --save '' >"$data/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.2; done

gw=(node gateway/bin/cxr-gateway.js)
if [ ! -s "$data/station-token" ]; then
  # The token stays in a file only this user reads, and reaches the edge by that file (never on a command line, where ps shows it).
  "${gw[@]}" admin add-station --store "$store" --redis "$redis" tram-demo --name 'Trạm y tế xã (demo)' | tail -n 1 >"$data/station-token"
  printf '%s' 'doc-phim-demo' | "${gw[@]}" admin add-user --store "$store" --redis "$redis" bs.demo --role radiologist --display-name 'BS. Demo'
fi
# The ML engineer's account (model registry), added on its own so that an older demo folder gets it too.
printf '%s' 'mo-hinh-demo' | "${gw[@]}" admin add-user --store "$store" --redis "$redis" ml.demo --role mlops --display-name 'ML Demo' >/dev/null 2>&1 || true
"${gw[@]}" serve --port "$gateway_port" --store "$store" --redis "$redis" >"$data/gateway.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$gateway_port/api/health"

chmod 600 "$data/station-token"
# --single-threaded-gc: V8's GC threads would otherwise take a core from the model (edge-agent README, benchmarks).
# The page stays on this machine (127.0.0.1, the default: no sign-in); DICOM is taken from storescu on this machine only.
node --single-threaded-gc edge-agent/bin/cxr-edge.js --data-dir "$data/edge" --model "$model" --dicom-port "$dicom_port" --http-port "$edge_port" \
  --calling-ae STORESCU@127.0.0.1 \
  --gateway "http://127.0.0.1:$gateway_port" --station-id tram-demo --station-token-file "$data/station-token" >"$data/edge.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$edge_port/api/health"

echo "== sending the demo radiographs to CXR_EDGE@$dicom_port"
node edge-agent/bin/cxr-edge.js send-demo --dicom-port "$dicom_port" || true
cat <<MSG

  The station's page (radiographer):  http://localhost:$edge_port/
  The hospital's page (radiologist):  http://localhost:$gateway_port/   sign in as bs.demo / doc-phim-demo
  The ML engineer's page (models):    http://localhost:$gateway_port/ml/   sign in as ml.demo / mo-hinh-demo
  Push and deploy a model:            npx cxr-registry login --gateway http://localhost:$gateway_port --username ml.demo --password-file -   (then type mo-hinh-demo)
  Send more images:                   storescu -aec CXR_EDGE 127.0.0.1 $dicom_port FILE.dcm   (calling AE STORESCU, from this machine)
                                      or copy files into $data/edge/incoming/
  Logs:                               $data/*.log
  Stop:                               Ctrl-C

MSG
wait
