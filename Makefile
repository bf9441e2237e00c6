# BMI — see README.md. `make` alone lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

GO        ?= go
# Ceph 16 (Debian 12) needs these go-ceph build tags.
TAGS      := pacific,ceph_preview
MODULE    := github.com/bmi-go/bmi
COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null)
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X $(MODULE)/service/version.Version=$(VERSION) -X $(MODULE)/service/version.Commit=$(COMMIT)
BINARIES  := bmid bmi hil-mock bmi-lab bmi-uat
# Pinned tool versions (the module proxy refuses @latest for several modules).
STATICCHECK_VERSION := v0.8.2
NFPM_VERSION        := v2.48.0
# Debian package version: ordered by commit time, then the commit.
PKG_VERSION := 0.1.0+git$(shell git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0).$(or $(COMMIT),unknown)
PKG_ARCH    := $(shell $(GO) env GOARCH)
RESULTS   := test-results

.PHONY: help deps build test quick ci uat bench lint fuzz clean package

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install the Debian packages the project needs (only those missing)
	@bash scripts/deps.sh

build: ## Build every binary into bin/ (bmi, hil-mock, bmi-uat and the lab's static bmi-lab-io without cgo)
	@mkdir -p bin
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o bin/ ./cmd/bmid ./cmd/bmi-lab
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/bmi ./cmd/hil-mock ./cmd/bmi-uat ./cmd/bmi-lab-io

package: build ## Build the .deb packages of bmid, bmi, hil-mock and bmi-uat into dist/ (nfpm, pinned)
	@mkdir -p dist
	@for p in bmid bmi hil-mock bmi-uat; do \
	  PKG_VERSION=$(PKG_VERSION) PKG_ARCH=$(PKG_ARCH) PKG_BIN=bin \
	    $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) package --packager deb \
	      --config packaging/$$p.yaml --target dist/ ; \
	done

test: deps ## Run every test tier: vet, unit, protocol, real Ceph, lab (the README's test command)
	@mkdir -p $(RESULTS)
	$(GO) vet -tags $(TAGS) ./...
	@# one Ceph cluster for every package's real-Ceph tests and one PostgreSQL for the store's, always purged after (scripts/with-test-ceph.sh, scripts/with-test-postgres.sh)
	GO=$(GO) TAGS=$(TAGS) bash scripts/with-test-ceph.sh bash scripts/with-test-postgres.sh bash -o pipefail -c '$(GO) test -tags $(TAGS) -race -count=1 -timeout 40m ./... 2>&1 | tee $(RESULTS)/test.log'

quick: ## The fast tier for the edit-test loop: go test -short ./... (no Ceph, no namespaces, no real clients; under two minutes)
	$(GO) test -tags $(TAGS) -short -count=1 ./...

ci: deps lint test ## What CI runs (.ci/run): lint (gofmt check, go vet, staticcheck), then every test tier (make test)

uat: deps build ## Build the lab and run the acceptance suite on it; prints where the report is (KEEP_LAB=1 keeps the lab up)
	@# bmi-lab up is idempotent (a running lab is resumed); bmi-uat exits non-zero unless every
	@# scenario it ran passed, and `make uat` exits with its status after printing the report path.
	@rc=0; \
	bin/bmi-lab up --nodes 4 --firmware node-02=uefi --bmid bin/bmid || { echo "make uat: bmi-lab up failed; the suite did not run" >&2; exit 1; }; \
	eval "$$(bin/bmi-lab env)"; \
	bin/bmi-uat run lab $(UAT_ARGS) || rc=$$?; \
	report=$$(ls -d $(RESULTS)/uat/*-lab-* 2>/dev/null | tail -1); \
	if [ "$${KEEP_LAB:-0}" = 1 ]; then echo "make uat: the lab is left up (KEEP_LAB=1); 'bin/bmi-lab down' removes it"; \
	else bin/bmi-lab down || rc=1; fi; \
	if [ -n "$$report" ]; then echo "make uat: report in $$report/report.html"; else echo "make uat: no report was written"; fi; \
	exit $$rc

bench: deps ## Run the benchmarks (QUICK=1: the reduced set); figures go to test-results/bench/<timestamp>/
	@# one throwaway Ceph cluster for the run (scripts/with-test-ceph.sh); the lab boots bring their own
	@dir=$(abspath $(RESULTS))/bench/$$(date -u +%Y%m%dT%H%M%SZ); mkdir -p $$dir; \
	export BMI_BENCH_DIR=$$dir BMI_BENCH_SINCE=$$(date +%s) BMI_BENCH_QUICK=$(if $(QUICK),1,0); \
	GO=$(GO) TAGS=$(TAGS) bash scripts/with-test-ceph.sh bash -o pipefail -c 'rc=0; \
	  if [ "$$BMI_BENCH_QUICK" != 1 ]; then $(GO) test -tags $(TAGS) -run "^$$" -bench "^BenchmarkISCSI$$" -benchtime 1x -timeout 30m ./service/iscsi 2>&1 | tee $$BMI_BENCH_DIR/go-bench.txt; echo $$? >$$BMI_BENCH_DIR/iscsi.rc; fi; \
	  $(GO) test -tags $(TAGS) -run "^$$" -bench "^Benchmark(BMI|Boot|BootFirmware|Restart|ProvisionNetwork|Scale|Gateways)$$" -benchtime 1x -timeout 90m ./internal/bench 2>&1 | tee -a $$BMI_BENCH_DIR/go-bench.txt || rc=1; \
	  if [ "$$BMI_BENCH_QUICK" != 1 ]; then $(GO) test -tags $(TAGS) -run "^$$" -bench "^BenchmarkAPILoad$$" -benchtime 1x -timeout 10m ./service/apiserver 2>&1 | tee -a $$BMI_BENCH_DIR/go-bench.txt || rc=1; fi; \
	  exit $$rc'; \
	echo "bench: results in $$dir (summary.md, results.json, *.svg; raw go test output in go-bench.txt)"

lint: ## gofmt check, go vet and staticcheck (pinned)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -tags $(TAGS) ./...

fuzz: ## Run each fuzz target for FUZZ_TIME (default 20s)
	@for spec in $$($(GO) test -tags $(TAGS) -list '^Fuzz' ./... | awk '/^Fuzz/ {f[n++]=$$1} /^ok/ {for (i = 0; i < n; i++) print $$2":"f[i]; n=0}'); do \
	  pkg=$${spec%%:*}; fn=$${spec##*:}; \
	  $(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$fn$$" -fuzztime $${FUZZ_TIME:-20s} $$pkg; \
	done

clean: ## Remove build and test output, and any lab network namespace left behind
	rm -rf bin dist
	find $(RESULTS) -mindepth 1 ! -name .gitignore -exec rm -rf {} +
	@for ns in $$(ip netns list 2>/dev/null | awk '/^bmilab-/ {print $$1}'); do \
	  echo "clean: removing lab namespace $$ns"; \
	  pids=$$(ip netns pids $$ns 2>/dev/null || true); [ -z "$$pids" ] || kill -9 $$pids 2>/dev/null || true; \
	  ip netns del $$ns; \
	done
