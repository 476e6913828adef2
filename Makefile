# loramixer — top-level tasks. The README's two commands are `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
RELEASE := .build/release

.PHONY: demo test release debug swift-test c-test cli-test clean

## Build the library and the C example, then run the demo on the bundled default model.
demo: release
	$(MAKE) -C examples-c run

## Everything CI runs: Swift tests, C tests (ABI sweep, errors, threads, leaks), CLI tests.
test: swift-test c-test cli-test

release:
	$(SWIFT) build -c release

swift-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

c-test: release
	$(MAKE) -C examples-c
	$(MAKE) -C Tests/C test memcheck

cli-test: release
	LMX_BIN=$(RELEASE)/lmx $(PYTHON) -m pytest -q Tests/cli

clean:
	rm -rf .build examples-c/build Tests/C/build
