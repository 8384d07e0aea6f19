# Developer tasks. The README's test command (go test ./...) is what CI runs;
# these add the race detector, linters and benchmarks.

GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build test race lint bench tidy-check

build:
	$(GO) build -o bin/sluice ./cmd/sluice

test:
	$(GO) test ./...

# The packages with concurrency, under the race detector (needs cgo: gcc).
race:
	$(GO) test -race ./internal/... ./cmd/... ./test/...

lint: tidy-check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

tidy-check:
	$(GO) mod tidy -diff

bench:
	$(GO) run ./bench/store
	$(GO) run ./bench/registry
	$(GO) run ./bench/gateway
