# loramixer — top-level tasks. The README's two commands are `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
RELEASE := .build/release
PREFIX ?= /usr/local
DESTDIR ?=
VERSION := $(shell cat VERSION)
MAJOR := $(firstword $(subst ., ,$(VERSION)))

# What Package.swift may not say (SwiftPM refuses unsafeFlags in a dependency required by version)
# is said here. SWIFT_FLAGS go to every `swift build` and `swift test`, debug and release alike, so
# SwiftPM never rebuilds for a changed command line: the C kernels at -O3 (SwiftPM's own levels are
# -O0 debug, -O2 release; see README, "Dependencies", for what -O3 is worth).
SWIFT_FLAGS ?= -Xcc -O3
# Only for libloramixer.so (its own `swift build --product`, so lmx gets neither): the version
# script (only lmx_* symbols, in version node LORAMIXER_0) and the SONAME.
LIB_LINK_FLAGS := -Xlinker --version-script=$(CURDIR)/Sources/LoRAMixerC/exports.map \
                  -Xlinker -soname=libloramixer.so.$(MAJOR)

.PHONY: demo test release swift-test c-test python-test version-check install uninstall install-test \
        downstream-test clean

## Build the library, the C examples and the example plugins, then run the routing demo (a prompt
## of each task, its answer, and the expert each token chose at each layer) and the plugin demo on
## the bundled default model.
demo: release
	$(MAKE) -C examples-c run plugin-run

## Everything CI runs, in order, stopping at the first failure: Swift tests, C tests (ABI sweep,
## errors, threads, plugins, demos; all under valgrind too), CLI and Python tests, the version
## check, install + pkg-config host + valgrind + uninstall, and a downstream SwiftPM package that
## depends on a tagged clone by version. The last line, and the only "all passed", comes after all.
test:
	@$(MAKE) --no-print-directory swift-test
	@$(MAKE) --no-print-directory c-test
	@$(MAKE) --no-print-directory python-test
	@$(MAKE) --no-print-directory version-check
	@$(MAKE) --no-print-directory install-test
	@$(MAKE) --no-print-directory downstream-test
	@echo "make test: all passed (swift, C, plugins, CLI, Python, version, install, downstream SwiftPM)"

## libloramixer.so (SONAME libloramixer.so.0, with a libloramixer.so.0 link beside it for hosts
## linked against the build folder) and lmx, in .build/release.
release:
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product lmx
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product loramixer $(LIB_LINK_FLAGS)
	ln -sf libloramixer.so $(RELEASE)/libloramixer.so.$(MAJOR)

swift-test:
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS)

c-test: release
	$(MAKE) -C examples-c all memcheck
	$(MAKE) -C Tests/C test memcheck
	$(MAKE) -C Tests/plugins test memcheck

python-test: release
	$(MAKE) -C examples-c plugins
	LMX_BIN=$(RELEASE)/lmx $(PYTHON) -m pytest -q Tests/cli python/tests

## VERSION is the one place the version is set; the header, Swift, pyproject and the Python package
## must agree with it, and the built library must carry SONAME libloramixer.so.MAJOR and version node
## LORAMIXER_MAJOR on every lmx_* symbol.
version-check: release
	$(PYTHON) tools/abi/check_version.py --library $(RELEASE)/libloramixer.so
	$(PYTHON) tools/abi/check_version.py --self-test

## Installs in $(DESTDIR)$(PREFIX) (see README, "Installing"), with a manifest for uninstall.
install: release
	tools/install/install.sh "$(CURDIR)" "$(RELEASE)" "$(PREFIX)" "$(DESTDIR)"

## Removes exactly what `make install` with the same PREFIX and DESTDIR installed.
uninstall:
	tools/install/uninstall.sh "$(PREFIX)" "$(DESTDIR)"

## make install into a temporary prefix; a C host built with pkg-config only, run with nothing set,
## and under the README's valgrind command; the installed lmx; make uninstall leaves nothing.
install-test: release
	Tests/install/install_test.sh

## A clone of the committed HEAD, tagged $(VERSION); a package depending on it by URL and version.
downstream-test:
	Tests/install/downstream_test.sh

clean:
	rm -rf .build examples-c/build Tests/C/build Tests/plugins/build
