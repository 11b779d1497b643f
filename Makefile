# recfork — build, test and operate. `make help` lists the targets.
GO        ?= go
BIN       := bin
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2
# Generated BPF objects live here; check-generated compares them after a rebuild.
GENERATED := dataplane/ebpf perf/xdpgen

.PHONY: help build test test-short generate check-generated bench bench-quick soak soak-quick gobench demo run lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t20

build: ## build recforkd and recforkctl into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

test: ## vet, then every test with the race detector (privileged tests need root)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

test-short: ## quick unit tests without the race detector
	$(GO) test -short -count=1 $(PKGS)

generate: ## rebuild the committed BPF objects (needs clang and libbpf-dev)
	$(GO) generate ./dataplane/... ./perf/xdpgen

check-generated: generate ## fail if the committed generated files are stale
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "untracked generated files: commit them"; exit 1; }

bench: ## the perf suite, full (minutes; root): writes perf/results/latest.json and perf/README.md
	$(GO) run ./perf/cmd/recforkperf -out perf/results/latest.json -readme perf/README.md

bench-quick: ## the perf suite's scenarios with fewer samples (under two minutes)
	$(GO) run ./perf/cmd/recforkperf -quick -out perf/results/latest.json -readme perf/README.md

soak: ## 10 minutes of recorded calls under abuse (root): fails on a failed call, lost copies or resources not returned
	$(GO) run ./perf/cmd/recforksoak -out perf/results/soak.json

soak-quick: ## the soak's CI variant (90 s of calls, under 3 minutes in all)
	$(GO) run ./perf/cmd/recforksoak -quick -out perf/results/soak-quick.json

gobench: ## Go benchmarks of the data plane, interpreter and SIPREC client
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./dataplane/... ./ccxml/... ./siprec/...

demo: build ## the main job in one command (see README: what it does today)
	./scripts/demo.sh

run: build ## run recforkd in the foreground with its defaults
	./$(BIN)/recforkd

lint: ## go vet and staticcheck
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fmt: ## gofmt every Go file except generated ones
	gofmt -w $$(git ls-files '*.go' | grep -v '_bpfel.go$$')

clean: ## remove build output
	rm -rf $(BIN)
