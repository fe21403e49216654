#!/usr/bin/env bash
# The GPU check: loadtape on a machine with an NVIDIA GPU, its driver and
# PyTorch. It runs the monitor's NVML test on the real devices, then records
# a GPU-bound OpenAI-compatible server (server.py), replays it at 1, 4, 8
# and 16 users with --monitor nvml,host, analyses the run, and fails unless
# the analyser names gpu_saturation for the gateway from NVML's readings.
# The server reserves 96 % of the GPU's memory at start (GPU_RESERVE), as
# vLLM does: the analyser must not call that gpu_memory_pressure.
#
#   testdata/gpu/check.sh LOADTAPE MONITOR_TEST OUT_DIR
#
# LOADTAPE is a loadtape binary, MONITOR_TEST the monitor package's test
# binary (go test -c ./monitor). Everything listens on 127.0.0.1 only.
set -euo pipefail
bin=$(realpath "$1")
mtest=$(realpath "$2")
out=$(realpath "$3")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
stage_len=${STAGE_LEN:-25s}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

wait_port() { # wait_port PORT: up to 120 s for something to listen there
	for _ in $(seq 240); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.5
	done
	echo "check.sh: nothing listens on 127.0.0.1:$1" >&2
	return 1
}

echo "== devices"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

echo "== NVML through the monitor package"
LOADTAPE_GPU=1 "$mtest" -test.run 'TestNVMLOnGPU|TestSamplerSources' -test.v -test.count=1 2>&1 | tee "$out/nvml-test.txt"

echo "== the GPU-bound server"
GPU_RESERVE=${GPU_RESERVE:-0.96} python3 "$here/server.py" 8000 >"$out/server.log" 2>&1 &
pids+=($!)
wait_port 8000
cat "$out/server.log"

echo "== record through the proxy"
"$bin" record --out "$work/captures" --roll 1s --route gateway@127.0.0.1:18000=http://127.0.0.1:8000 >"$work/record.log" 2>&1 &
rec=$!
pids+=($rec)
wait_port 18000
python3 - <<'PY'
import json, urllib.request
base = "http://127.0.0.1:18000"
for i in range(4):
    body = {"model": "gpu-sim", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 24,
            "messages": [{"role": "user", "content": "Question %d: what breaks first?" % i}]}
    req = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "Authorization": "Bearer sk-check"})
    assert b"[DONE]" in urllib.request.urlopen(req).read()
for path in ("/v1/models", "/health"):
    urllib.request.urlopen(base + path).read()
PY
kill -INT $rec
wait $rec
"$bin" inspect "$work/captures"

echo "== replay at 1, 4, 8, 16 users"
cat >"$work/profile.yaml" <<EOF
scenarios:
  gateway:
    service: gateway
    mode: closed
    stages:
      - {users: 1, duration: $stage_len, name: baseline}
      - {users: 4, duration: $stage_len}
      - {users: 8, duration: $stage_len}
      - {users: 16, duration: $stage_len}
    spawn_rate: 50
    think: {uniform: [50ms, 150ms]}
    mix: {chat.completions: 100}
targets:
  - {scenario: gateway, metric: p95, operation: all, max: 2s}
  - {scenario: gateway, metric: rps, users: 16, min: 10}
EOF
"$bin" replay --captures "$work/captures" --profile "$work/profile.yaml" \
	--target gateway=http://127.0.0.1:8000 --out "$work/run" \
	--monitor nvml,host --monitor-every 500ms

echo "== analyze"
rc=0
"$bin" analyze "$work/run" --out "$work/report" || rc=$?
echo "analyze exit $rc (3: a target missed, as planned)"
cp "$work/report/summary.json" "$work/report/report.md" "$out/"
tar czf "$out/figures.tgz" -C "$work/report" figures
"$bin" inspect --json "$work/run" >"$out/run-inspect.json"

python3 - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for st in s["stages"]:
    r, ops = st["resources"], st["operations"]
    chat = ops.get("chat.completions", {})
    print("users %3d  rps %5.2f  p50 %7.0f ms  gpu_util %5.1f %%  gpu_mem %6.0f MiB (%.1f %%)  power %s  cpu %5.1f %%" % (
        st["users"], chat.get("rps", 0), chat.get("latency_ms", {}).get("p50", 0),
        r.get("gpu_util", {}).get("mean", -1), r.get("gpu_mem_used_mb", {}).get("max", -1), r.get("gpu_mem_pct", {}).get("max", -1),
        r.get("gpu_power_w", {}).get("mean", "-"), r.get("cpu_util", {}).get("mean", -1)))
kinds = {f["kind"] + "/" + f["scenario"] for f in s["findings"]}
for f in s["findings"]:
    print("finding %s/%s: %s" % (f["kind"], f["scenario"], f["summary"]))
if any(k.startswith("gpu_memory_pressure/") for k in kinds):
    sys.exit("check.sh: FAIL: memory reserved at start called pressure")
if "gpu_saturation/gateway" not in kinds:
    sys.exit("check.sh: FAIL: no gpu_saturation finding for gateway")
print("check.sh: PASS: gpu_saturation named from NVML, the reservation not called pressure")
PY
