# convlens: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
# The test suite runs on the pure-Go backend, offline.
TESTENV := $(ENV) export GOMLX_BACKEND=go &&

.PHONY: demo test deps build bench

## demo: Grad-CAM of the embedded default model on a sample image, written to out/.
demo:
	mkdir -p out
	$(ENV) go run ./cmd/convlens cam --model testdata/tinycnn/model.onnx --image testdata/images/chelsea.png \
		--layer /layer2/layer2.0/relu_1/Relu_output_0 --out-png out/cam.png --out-npy out/cam.npy
	@echo "wrote out/cam.png and out/cam.npy"

## test: install what the tests need, then run every test.
test: deps
	$(TESTENV) go vet ./... && go test -count=1 -timeout 30m ./...

deps:
	./scripts/deps.sh

build:
	$(ENV) go build -o bin/convlens ./cmd/convlens
