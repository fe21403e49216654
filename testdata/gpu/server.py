"""A small OpenAI-compatible chat server whose every token is real GPU work.

It stands in for an LLM server in testdata/gpu/check.sh, the check run on a GPU
machine: loadtape records it, replays it at growing user counts with
--monitor nvml, and the analyser must name GPU saturation from NVML's own
readings. Each token is LAYERS bf16 products of an (M x N) activation with an
(N x N) weight, done under one lock, so the GPU is the single shared resource:
throughput is flat once it is busy and latency grows with users.

GPU_RESERVE=F takes that share of the device's memory at start and keeps it,
as vLLM does with gpu_memory_utilization: NVML then reads the GPU as F full
at every load, which the analyser must not call memory pressure.

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (stream or
not; with stream_options.include_usage the last chunk carries the usage).
Needs torch with CUDA; python3 server.py PORT.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

M = int(os.environ.get("GPU_M", "4096"))
N = int(os.environ.get("GPU_N", "8192"))
LAYERS = int(os.environ.get("GPU_LAYERS", "8"))
MAX_TOKENS = 64
MODEL = "gpu-sim"

dev = torch.device("cuda")
weights = [torch.randn(N, N, device=dev, dtype=torch.bfloat16) / N**0.5 for _ in range(LAYERS)]
act = torch.randn(M, N, device=dev, dtype=torch.bfloat16)
gpu = threading.Lock()
reserved = None
if float(os.environ.get("GPU_RESERVE", "0")) > 0:
    free, total = torch.cuda.mem_get_info()
    want = int(float(os.environ["GPU_RESERVE"]) * total) - (total - free)
    if want > 0:
        reserved = torch.empty(want, dtype=torch.uint8, device=dev)


def token_step():
    """One decode step. Kernels are queued under the lock on the one stream,
    so the GPU is the queue every request waits in, and the wait for them is
    outside it, so the next request's kernels are queued before these end:
    with two users or more the GPU never idles between steps."""
    with gpu:
        x = act
        for w in weights:
            x = x @ w
        done = torch.cuda.Event()
        done.record()
    done.synchronize()


def calibrate():
    for _ in range(3):
        token_step()
    t = time.perf_counter()
    for _ in range(20):
        token_step()
    return (time.perf_counter() - t) / 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "loadtape"}]})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        if self.path != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        except ValueError:
            self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        n = max(1, min(int(req.get("max_tokens") or 16), MAX_TOKENS))
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in req.get("messages", []))
        cid = "chatcmpl-%d" % time.monotonic_ns()
        created = int(time.time())
        if not req.get("stream"):
            for _ in range(n):
                token_step()
            self.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " tok" * n}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n},
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(choices, **extra):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL, "choices": choices}
            obj.update(extra)
            self.chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for i in range(n):
            token_step()
            event([{"index": 0, "delta": {"content": " tok"}, "finish_reason": "length" if i == n - 1 else None}])
        if (req.get("stream_options") or {}).get("include_usage"):
            event([], usage={"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n})
        self.chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    sys.setswitchinterval(0.0005)  # handler threads wake promptly when their kernels end
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    step = calibrate()
    free, total = torch.cuda.mem_get_info()
    print("server.py: %s, one token step %.2f ms (M=%d N=%d layers=%d), device memory %.1f %% in use" % (
        torch.cuda.get_device_name(), step * 1e3, M, N, LAYERS, 100 * (total - free) / total), flush=True)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print("server.py: listening on 127.0.0.1:%d" % port, flush=True)
    srv.serve_forever()
