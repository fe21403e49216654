# loadtape: build, test, benchmark, lint. cgo is on because go-nvml needs it.
export CGO_ENABLED := 1
# go-nvml's headers use deprecated NVML declarations; the warnings are noise.
export CGO_CFLAGS := -Wno-deprecated-declarations

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
NODE_FIXTURES := testdata/node

.PHONY: build test seaweedfs bench bench-peers bench-proxy bench-captures bench-analyze bench-scale bench-lag lint node-fixtures demo diagnose image clean

build:
	go build -ldflags "$(LDFLAGS)" -o bin/loadtape ./cmd/loadtape

# The tests start real npm components (the OpenAI client, the reference MCP
# server, DuckDB); they are installed from the lockfile in testdata/node.
node-fixtures: $(NODE_FIXTURES)/node_modules/.package-lock.json

$(NODE_FIXTURES)/node_modules/.package-lock.json: $(NODE_FIXTURES)/package-lock.json
	cd $(NODE_FIXTURES) && npm ci --no-audit --no-fund

# SeaweedFS's weed: the S3-compatible server the object-storage tests start
# (internal/s3test). Built from its module at one pinned version, inside the
# module's own directory so that its go.mod (it has a replace, which
# `go install pkg@version` refuses) applies; loadtape's go.mod does not
# depend on it. Built only when bin/tools/weed is missing (about 6 minutes
# of both cores cold).
SEAWEEDFS_VERSION := v0.0.0-20261109003541-7506e5f91cd6
WEED := bin/tools/weed
seaweedfs: $(WEED)
$(WEED):
	cd / && go mod download github.com/seaweedfs/seaweedfs@$(SEAWEEDFS_VERSION)
	mkdir -p $(dir $(abspath $(WEED)))
	cd "$$(go env GOMODCACHE)/github.com/seaweedfs/seaweedfs@$(SEAWEEDFS_VERSION)" && CGO_ENABLED=0 go build -trimpath -o "$(abspath $(WEED))" ./weed

# The end-to-end demo test measures latency and send lag, so it runs last,
# alone and without the race detector (see demo/demo_test.go).
test: node-fixtures build seaweedfs
	go test -race -timeout 25m $$(go list ./... | grep -v '/demo$$')
	go test -count=1 -timeout 10m ./demo/

demo: build
	./bin/loadtape demo

# The diagnosis benchmark (diagnose/README.md): planted bottlenecks driven
# through record, replay and analyze, one target after another, about 13
# minutes; DIAGNOSE_FLAGS='-quick' or '-only pool,retrograde' for less.
diagnose: build
	go run ./diagnose/cmd/diagnose -loadtape bin/loadtape -out out/diagnose $(DIAGNOSE_FLAGS)

# The container image (deploy/Containerfile) with the first builder found:
# podman, buildah, or docker when its daemon answers. IMAGE names the tag.
IMAGE ?= loadtape:$(VERSION)
image:
	@if command -v podman >/dev/null 2>&1; then set -x; podman build -f deploy/Containerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .; \
	elif command -v buildah >/dev/null 2>&1; then set -x; buildah build -f deploy/Containerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .; \
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then set -x; docker build -f deploy/Containerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .; \
	elif command -v docker >/dev/null 2>&1; then echo "make image: docker is installed but its daemon does not answer (docker info failed); start it, or install podman or buildah" >&2; exit 1; \
	else echo "make image: no container builder installed (podman, buildah or docker); install one, or build deploy/Containerfile where one is" >&2; exit 1; fi

bench:
	go test -run '^$$' -bench . -benchmem ./...

# loadtape replay beside hey, vegeta and wrk against a local nginx, in one
# run (about 2 minutes; installs the peers it lacks: bench/peers.sh).
# Not part of test: it measures, and loads the whole machine.
bench-peers: build
	bash bench/peers.sh

# loadtape replay's peak RSS with 100,000 closed users thinking 2–5 s
# against a local nginx, and with 10,000 SSE streams open at once, each
# row's chunk offsets checked (about 3 minutes; bench/replay-scale.sh).
# Not part of test: it loads the whole machine.
bench-scale: build
	bash bench/replay-scale.sh

# The recording proxy beside bare goproxy, its added latency and a sustained
# 10,000 exchanges/s, write-ahead log on (about 50 s: bench/proxy.sh).
bench-proxy:
	bash bench/proxy.sh

# Capture writes per second as the recording proxy writes them, best and
# median of 3 runs (bench/captures.sh; BASE=REV runs REV's writer beside).
bench-captures:
	bash bench/captures.sh

# The statistics of 10 M result rows beside DuckDB's grouped exact
# percentiles of the same files, and every report, with peak RSS; 3 rounds
# (bench/analyze.sh; writes the run once into bin/bench-analyze).
bench-analyze:
	bash bench/analyze.sh

# Send-lag p99 at 5,000 arrivals/s, 10 runs of replay's BenchmarkSendLag5000,
# and how many stayed at or under 2 ms (about 1 minute; bench/lag.sh).
# DEMO=N also runs the healthy quick demo N times (70-90 s each) and counts
# those whose analysis found the load generator lagging.
bench-lag: build
	bash bench/lag.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

clean:
	rm -rf bin out
