# Thin wrapper over CMake + CTest.  Every target installs what is missing
# first (scripts/deps.sh), so these work on a fresh Debian 12 machine.
BUILD   ?= build
JOBS    ?= $(shell nproc)
PREFIX  ?= /usr/local
CMAKE_FLAGS ?=

.PHONY: all build deps test run run-hello run-examples bench asan tsan test-aarch64 fuzz install docs clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j 1

# The shop (shop/, docs/shop.md): every service in one process (`shop all`)
# on loopback ports, calling each other over gRPC, its SQLite files in
# ./.shop-data (kept: a second run finds the data), the catalog seeded on
# the first start.  Prints a curl tour first (shop/tour.sh); Ctrl-C stops
# it gracefully.  SHOP_DATA_DIR=/elsewhere make run for another folder;
# every SHOP_* variable of `shop --help` works the same way.
# Builds only the shop, quietly (warnings and errors still show).
SHOP_DATA_DIR ?= ./.shop-data
run: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@echo "building the shop in $(BUILD)/ (quietly; a first build takes a minute or two)"
	@scripts/quiet_build.sh $(BUILD) -j $(JOBS) --target shop
	@shop/tour.sh
	@SHOP_DATA_DIR=$(SHOP_DATA_DIR) exec $(BUILD)/shop/shop all

# The example HTTP service (examples/hello): prints the URLs to try; Ctrl-C
# stops it gracefully.  LISTEN=127.0.0.1:9000 make run-hello for another port.
LISTEN ?= 127.0.0.1:8080
run-hello: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@echo "building examples/hello in $(BUILD)/ (quietly; a first build takes a minute)"
	@scripts/quiet_build.sh $(BUILD) -j $(JOBS) --target hello
	@$(BUILD)/examples/hello --listen $(LISTEN)

run-examples: build
	@examples/csp/run_all.sh $(BUILD)

bench: deps
	@scripts/deps.sh bench
	@cmake -S . -B $(BUILD) >/dev/null && cmake --build $(BUILD) -j $(JOBS)
	@bench/compare.sh all

# Sanitizer builds run the whole suite; the heaviest tests run at a tenth
# of their size there (TERN_TEST_SCALE); under TSan, which counts each
# coroutine as a thread (8128 at most), at a two-hundredth.
asan: deps
	@cmake -S . -B build-asan -DTERN_SANITIZE=address -DTERN_WERROR=ON -DTERN_BENCH=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && TERN_TEST_SCALE=0.1 ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 1

# TSan maps its shadow at fixed addresses; with the high mmap randomisation
# of recent kernels that can collide, so the tests run without ASLR.
tsan: deps
	@cmake -S . -B build-tsan -DTERN_SANITIZE=thread -DTERN_WERROR=ON -DTERN_BENCH=OFF >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@cd build-tsan && TERN_TEST_SCALE=0.005 TERN_TEST_NO_RSS=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0 \
	  setarch $$(uname -m) -R ctest --output-on-failure -j 1

test-aarch64: deps
	@scripts/deps.sh cross
	@cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
	  -DTERN_WERROR=ON -DTERN_BENCH=OFF >/dev/null
	@cmake --build build-aarch64 -j $(JOBS)
	@cd build-aarch64 && TERN_TEST_SCALE=0.05 TERN_TEST_UNDER_QEMU=1 ctest --output-on-failure -j 1

# libFuzzer on every input tern takes from outside: the HTTP parsers
# (request heads, response heads, chunked bodies), URLs/queries/forms/
# cookies/paths, JSON request bodies, configuration files, the log line
# formatter, the HTTP client's response path with bodies (real sockets),
# gRPC's codecs (timeouts, grpc-message, -bin metadata, framing, gzip)
# and its JSON mapping,
# one after another, each for an equal share of FUZZ_SECONDS (at
# least 1 s), so the whole run takes about FUZZ_SECONDS; CI uses
# FUZZ_SECONDS=20.
# Each keeps what it finds in $(FUZZ_BUILD)/corpus/<name>.
FUZZ_SECONDS ?= 600
FUZZ_BUILD   ?= build-fuzz
FUZZ_TARGETS := http_parse http_response http_chunked http_url http_json config_json log_format h2_client h2_server http_client nats_parse grpc_wire grpc_desc grpc_json jwt yaml
fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DTERN_FUZZ=ON -DTERN_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) --target $(addprefix fuzz_,$(FUZZ_TARGETS)) -j $(JOBS)
	@secs=$$(( $(FUZZ_SECONDS) / $(words $(FUZZ_TARGETS)) )); [ $$secs -gt 0 ] || secs=1; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t && cp -n fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/; \
	  echo "fuzz_$$t: $$secs s"; \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$t -max_total_time=$$secs -max_len=4096 -print_final_stats=1 \
	    $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t > $(FUZZ_BUILD)/fuzz_$$t.log 2>&1 \
	    || { tail -40 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
	  grep -E "^Done|stat::(number_of_executed|new_units)" $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

# The API reference from include/tern/ (Doxygen), in $(BUILD)/docs/html;
# fails if a public function is undocumented.
docs: deps
	@scripts/check-docs.sh $(BUILD)/docs

install: build
	@cmake --install $(BUILD)

clean:
	@rm -rf $(BUILD) build-asan build-tsan build-aarch64 build-fuzz
