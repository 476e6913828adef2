# loramixer — top-level tasks. The README's two commands are `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
RELEASE := .build/release

.PHONY: demo test release swift-test c-test python-test clean

## Build the library, the C examples and the example plugins, then run the routing demo (a prompt
## of each task, its answer, and the expert each token chose at each layer) and the plugin demo on
## the bundled default model.
demo: release
	$(MAKE) -C examples-c run plugin-run

## Everything CI runs: Swift tests, C tests (ABI sweep, errors, threads, plugins, demos; all under
## valgrind too), CLI and Python tests.
test: swift-test c-test python-test

release:
	$(SWIFT) build -c release

swift-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

c-test: release
	$(MAKE) -C examples-c all memcheck
	$(MAKE) -C Tests/C test memcheck
	$(MAKE) -C Tests/plugins test memcheck

python-test: release
	$(MAKE) -C examples-c plugins
	LMX_BIN=$(RELEASE)/lmx $(PYTHON) -m pytest -q Tests/cli python/tests

clean:
	rm -rf .build examples-c/build Tests/C/build Tests/plugins/build
