# convlens: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
# The test suite runs on the pure-Go backend, offline.
TESTENV := $(ENV) export GOMLX_BACKEND=go &&

.PHONY: demo test deps build bench notebook notebook-env notebook-test fuzz

## demo: the textbook walkthrough on the embedded models, offline, written to out/.
demo:
	$(ENV) go run ./cmd/convlens demo --out out

## test: install what the tests need, then run every test, one package at a time: the notebooks and
## the torchvision exports each load both cores, and together they made a notebook cell fail once.
test: deps
	./scripts/check-tree.sh
	$(TESTENV) go vet ./... && go test -count=1 -p 1 -timeout 30m ./...
	$(MAKE) fuzz

## fuzz: each loader's fuzz test for FUZZTIME (default 15s) from its seeds and committed corpus; a crasher
## is written to the package's testdata/fuzz/ and fails the run (commit it as a regression seed once fixed).
FUZZTIME ?= 15s
fuzz:
	$(TESTENV) for t in ./internal/npy:FuzzDecode ./models:FuzzLoadImage ./models:FuzzParseONNX; do \
		go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10x "$${t%%:*}" || exit 1; done

deps:
	./scripts/deps.sh

build:
	$(ENV) go build -o bin/convlens ./cmd/convlens

## notebook: set up Jupyter with the Go (GoNB) kernel and start it on localhost, in notebooks/.
notebook:
	./scripts/notebook.sh

## notebook-env: only the set-up of `notebook` (Jupyter, GoNB, goimports, gopls, the kernel spec, the git filter); idempotent.
notebook-env:
	./scripts/notebook-env.sh

## notebook-test: execute every notebook headless and in Chromium, and check outputs and charts (CI runs this within `test`).
notebook-test:
	$(TESTENV) CONVLENS_NOTEBOOKS=1 CONVLENS_BROWSER=1 go test -count=1 -timeout 40m -v ./notebooks/...

## bench: Grad-CAM time and memory against PyTorch (pytorch-grad-cam's method), five models, batch 1 and 8 (15-25 min);
## the report is also written to bench/results.md. BENCHFLAGS passes flags, e.g. BENCHFLAGS=-quick.
bench:
	$(ENV) go run ./bench -out bench/results.md $(BENCHFLAGS)

## coverage: which torchvision models and ONNX opsets convlens explains as PyTorch does; table also in coverage/results.md.
.PHONY: coverage
coverage:
	$(TESTENV) go run ./coverage -out coverage/results.md $(COVERAGEFLAGS)
