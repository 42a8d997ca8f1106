# Flotilla. `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/flotilla-dev/flotilla/shared/version.Version=$(VERSION) \
           -X github.com/flotilla-dev/flotilla/shared/version.Commit=$(COMMIT)
# -count=1: the e2e tests build the binaries they run, which Go's test cache cannot see, so a
# cached e2e result could be stale.
# -parallel 4: the e2e tests run four at a time, each on a cluster pair of its own.
GOTEST_FLAGS ?= -race -timeout 45m -count=1 -parallel 4
TOOLS_BIN := $(CURDIR)/.cache/tools
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/flotilla (hub and CLI) and bin/flotilla-agent
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/flotilla ./hub/cmd/flotilla
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/flotilla-agent ./agent/cmd/flotilla-agent

.PHONY: k8s-bins
k8s-bins: ## build etcd, kube-apiserver, controller-manager, scheduler and kwok into ~/.cache (once)
	@hack/k8s-bins.sh

.PHONY: test
test: k8s-bins ## run every test (unit, integration, e2e against local clusters) with -race; lists the slowest
	@mkdir -p .cache && go build -o .cache/testsummary ./hack/testsummary
	set -o pipefail; go test -json $(GOTEST_FLAGS) ./... | .cache/testsummary -slowest 15

# make bench: the reproducible suite (under 20 minutes on 2 cores), one table: the fleet
# simulator against a real hub at BENCH_AGENTS agents (hub memory per agent, commit → ACKs,
# restart, reconnect storm), webhook → applied on one real cluster, the agent applying 1,000
# objects against kubectl and correcting drift, and the hub's decision per cluster at
# BENCH_CLUSTERS clusters, the operator's status of 10,000 clusters, and the dashboard's fleet
# page at 10,000 clusters × 20 apps.
# BENCHMARKS.md holds the latest table.
BENCH_AGENTS ?= 1000
BENCH_CLUSTERS ?= 10000
BENCH ?= FleetSim|WebhookToApplied|Apply1000ConfigMaps|DriftCorrection|RenderFanOut|Status10kx2|FleetPage10kx20

.PHONY: bench
bench: k8s-bins ## run the benchmark suite (see BENCHMARKS.md) and print one table
	@mkdir -p .cache && go build -o .cache/benchtable ./hack/benchtable
	set -o pipefail; FLOTILLA_BENCH_AGENTS=$(BENCH_AGENTS) FLOTILLA_BENCH_CLUSTERS=$(BENCH_CLUSTERS) go test -p 1 -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 20m ./e2e/ ./hub/internal/fleet/ ./hub/internal/server/ ./hub/internal/ui/ | .cache/benchtable

.PHONY: bench-fleet
bench-fleet: ## the fleet figures at 10,000 simulated agents (about 10 minutes; one table)
	@mkdir -p .cache && go build -o .cache/benchtable ./hack/benchtable
	set -o pipefail; FLOTILLA_BENCH_AGENTS=10000 go test -run '^$$' -bench 'FleetSim' -benchtime 1x -timeout 90m ./e2e/ | .cache/benchtable

.PHONY: bench-all
bench-all: k8s-bins ## every benchmark of the module, in-process ones too (long); one table
	@mkdir -p .cache && go build -o .cache/benchtable ./hack/benchtable
	set -o pipefail; go test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 90m ./... | .cache/benchtable

.PHONY: lint
lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi
	go vet ./...

.PHONY: tools
tools: ## install the pinned code generators into .cache/tools (protoc comes from Debian's protobuf-compiler)
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	GOBIN=$(TOOLS_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS_BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: generate
generate: tools ## regenerate the protocol's Go code from proto/
	PATH=$(TOOLS_BIN):$$PATH protoc -I proto \
	  --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  proto/flotilla/v1/flotilla.proto

.PHONY: verify
verify: generate ## regenerate and tidy, then fail on any difference
	go mod tidy
	@git diff --exit-code -- proto go.mod go.sum || { echo "generated code or go.mod is stale: run make generate && go mod tidy"; exit 1; }

.PHONY: demo
demo: build k8s-bins ## run the whole system locally: two clusters, a Git repo, the hub and two agents
	go run ./e2e/cmd/demo --bin-dir bin

.PHONY: docker-build
docker-build: ## build the hub and agent images (needs a Docker engine)
	docker build -f Dockerfile.hub -t flotilla-hub:$(VERSION) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) .
	docker build -f Dockerfile.agent -t flotilla-agent:$(VERSION) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) .

.PHONY: clean
clean: ## remove build outputs (the cached Kubernetes binaries stay in ~/.cache/flotilla)
	rm -rf bin .cache
