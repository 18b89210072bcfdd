# The two commands a newcomer needs: `make run` and `make test`.
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 3s

.PHONY: run cluster test fmt-check vet unit services fuzz bench build check-history test-cluster-long

## run: the whole service in dev mode (authctl dev: embedded nats-server, Postgres, mail catcher, demo account)
run:
	$(GO) run ./cmd/authctl dev

## cluster: the production topology as local processes: 3 nats-server nodes (R3), commands x2, projector x2,
## notifier, web; authctl dev --cluster on the binaries of bin/ (nats-server at go.mod's version; docs/dev.md)
cluster: build
	./bin/authctl dev --cluster --bin-dir bin

## test: gofmt check, go vet, and every test with the race detector
test: services fmt-check vet unit

services:
	@./scripts/ensure-services

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

## fuzz: every fuzz target for FUZZTIME each, one after the other (3s by default, as in CI; make fuzz FUZZTIME=1m; docs/fuzzing.md)
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz

## test-cluster-long: the 3-node cluster fault tests, longer and with each fault repeated (docs/durability.md, "Cluster tests")
test-cluster-long:
	AUTH_LONG_TESTS=1 $(GO) test -race -count=1 -timeout 20m -run 'Cluster' -v ./internal/commands/ ./internal/eventstore/ ./internal/natsutil/

## bench: the end-to-end benchmark, not part of make test (authctl bench; BENCH_FLAGS="--json", "--quick"; docs/bench.md)
bench:
	$(GO) run ./cmd/authctl bench $(BENCH_FLAGS)

## check-history: the long randomized history run and its checker (docs/history-check.md); size from
## HISTCHECK_CLIENTS, HISTCHECK_ACCOUNTS, HISTCHECK_SECONDS, HISTCHECK_OPS_PER_ROUND, HISTCHECK_INSTANCES, HISTCHECK_SEED,
## HISTCHECK_PARTITIONS
HISTCHECK_CLIENTS  ?= 16
HISTCHECK_ACCOUNTS ?= 200
HISTCHECK_SECONDS  ?= 300
check-history:
	HISTCHECK_CLIENTS=$(HISTCHECK_CLIENTS) HISTCHECK_ACCOUNTS=$(HISTCHECK_ACCOUNTS) HISTCHECK_SECONDS=$(HISTCHECK_SECONDS) \
		$(GO) test -count=1 -timeout 0 -run '^TestHistory$$' -v ./internal/histcheck/histrun/

## build: every binary into bin/, and nats-server at the version go.mod pins (not the machine's)
build:
	$(GO) build -o bin/ ./cmd/... github.com/nats-io/nats-server/v2
