# Tern: `make run` starts a complete single node; `make test` runs every test.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The race detector needs cgo; use it whenever a C compiler is there.
RACE        ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)
ARGS        ?=

.PHONY: run test lint bench build fuzz clean killloop screenshots

# Built, then started in place of `go run`: go run exits 1 whenever it saw
# Ctrl-C, whatever the program's own status, so make would report a clean
# stop (SIGINT drains and exits 0) as an error. BIN moves the binary.
BIN         ?= bin/tern
run:
	$(GO) build -o $(BIN) ./cmd/tern
	exec $(BIN) serve $(ARGS)

build:
	$(GO) build -o bin/tern ./cmd/tern

test:
	$(GO) test $(RACE) -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Go benchmarks of the hot paths; the end-to-end load generator is
# `tern bench` (see docs/benchmarks.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The cluster chaos test at length: three nodes on FerretDB + RabbitMQ, a
# rotating node SIGKILLed and restarted KILLS times under traffic, every
# message answered sent counted (lost, stranded, redelivered). `make test`
# runs 3 kills; this takes about 20 minutes. Results: docs/cluster-bench.md.
KILLS      ?= 100
KILL_SENDS ?= 60
KILL_PAUSE ?= 0s
killloop:
	TERN_TEST_KILLS=$(KILLS) TERN_TEST_KILL_SENDS=$(KILL_SENDS) TERN_TEST_KILL_PAUSE=$(KILL_PAUSE) \
	  $(GO) test -count=1 -timeout 120m -run '^TestClusterKillLoop$$' -v ./cmd/tern

# Short fuzzing of every decoder; FUZZTIME=5m for a longer run.
FUZZTIME ?= 20s
FUZZ_TARGETS = wire:FuzzCheckJSON wire:FuzzDecodeClientFrame wire:FuzzDecodeServerFrame server:FuzzAppendString \
  auth:FuzzNormalizePhone auth:FuzzParseAccessToken auth:FuzzParseRefreshToken \
  auth:FuzzValidCodeFormat auth:FuzzVerifyInput
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t#*:}; \
	  echo "== $$pkg $$fn"; \
	  $(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) || exit 1; done

clean:
	rm -rf bin data

# The web client's screens, taken by its browser tests (needs chromium).
screenshots:
	mkdir -p docs/screenshots
	TERN_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestTwoUsersChat|TestGroupAndImage|TestAdminDashboard' ./web
