# carrier — the two commands of README.md, and their parts.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
PYTHON ?= /usr/bin/python3
JOBS ?= $(shell nproc)

.PHONY: all deps build run test unit e2e fuzz bench clean install

all: build

deps:
	./scripts/install-deps

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Runs carrier on its built-in default configuration (SMTP on 127.0.0.1:2525, data in ./var).
# Builds only the server (the tests are built by `make test`).
run: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target carrier
	$(BUILD)/carrier serve

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

e2e: build
	$(PYTHON) -m pytest -q tests/e2e

# Every test: unit tests (CTest) and end-to-end tests (pytest against the real binary).
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# Fault injection (tests/faults, docs/reliability.md): FAULT_ROUNDS SIGKILLs under load and
# while relaying a batch, the spool and the Maildir on a full tmpfs in a private mount
# namespace (needs root), a relay peer that stalls in DATA (2 min). Short versions of all but
# the stall run in `make test`; the network faults are in tests/e2e/test_netfaults.py.
.PHONY: test-faults
FAULT_ROUNDS ?= 20
test-faults: build
	FAULT_ROUNDS=$(FAULT_ROUNDS) CARRIER_BIN=$${CARRIER_BIN:-$(abspath $(BUILD))/carrier} $(PYTHON) -m pytest -q -s -p no:cacheprovider tests/faults

# libFuzzer targets (clang); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DCARRIER_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	./tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# CI: every libFuzzer target for 30 s (12 targets: about 6 minutes plus the build).
.PHONY: fuzz-ci
fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=30

# The whole unit suite (CTest) and e2e suite (pytest on build-asan/carrier) built at -O1 (a third
# less compile time than -O2; the tests are I/O-bound) with
# -fsanitize=address,undefined; any AddressSanitizer, LeakSanitizer or UBSan report, in a test
# or in a carrier process the e2e tests start, fails the run (tests/sanitize/run.sh).
.PHONY: test-sanitize
SANITIZE_BUILD ?= build-asan
test-sanitize: deps
	cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCARRIER_SANITIZE=ON \
	  -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g -DNDEBUG" -DCMAKE_CXX_FLAGS="-fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	cmake --build $(SANITIZE_BUILD) -j $(JOBS)
	PYTHON=$(PYTHON) JOBS=$(JOBS) ./tests/sanitize/run.sh $(SANITIZE_BUILD)

# Every benchmark scenario (bench/suite.sh: carrier next to Postfix, Exim and OpenSMTPD, about
# 17 minutes on 2 cores; root), then bench/report.py writes the tables into docs/performance.md.
# Builds only the server and the load generator.
bench: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target carrier carrier-tls-load
	BUILD=$(BUILD) ./bench/suite.sh

# Installs the binary as PREFIX/sbin/carrier with PREFIX/sbin/sendmail pointing at it (programs
# that send mail through /usr/sbin/sendmail then hand it to carrier), the example configuration
# as /etc/carrier/carrier.toml.example, the systemd unit, the carrier(8) man page and the docs.
# DESTDIR for staging.
PREFIX ?= /usr
install: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target carrier
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)/etc/carrier
	install -m 0755 $(BUILD)/carrier $(DESTDIR)$(PREFIX)/sbin/carrier
	ln -sf carrier $(DESTDIR)$(PREFIX)/sbin/sendmail
	install -m 0644 contrib/carrier.toml $(DESTDIR)/etc/carrier/carrier.toml.example
	install -d $(DESTDIR)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/doc/carrier
	install -m 0644 contrib/carrier.service $(DESTDIR)/lib/systemd/system/carrier.service
	install -m 0644 docs/man/carrier.8 $(DESTDIR)$(PREFIX)/share/man/man8/carrier.8
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/carrier/

clean:
	rm -rf $(BUILD) build-fuzz
