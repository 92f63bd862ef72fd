# Convenience targets around CMake. `make quickstart` and `make check` are
# the two commands the README starts with.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CTEST_ARGS ?= --output-on-failure --timeout 600

.PHONY: all build quickstart test asan check bench fuzz-smoke clean soak

all: build

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

quickstart: build
	$(BUILD)/tools/sluice run topologies/quickstart.yaml
	@echo
	@echo "first records written to topologies/out/quickstart-orders.jsonl:"
	@head -n 3 topologies/out/quickstart-orders.jsonl

test: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON

# The whole suite, then again under AddressSanitizer + UBSan.
asan: $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_ARGS)

check: test asan

bench: build
	bench/run_bench.sh $(BUILD)

# Resource growth and ledger under load and worker kills (docs/testing.md,
# "Soak"); not part of `check`. SOAK_SECONDS=N overrides the 10 minutes.
SOAK_SECONDS ?= 600
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh $(BUILD)

# libFuzzer targets (fuzz/README.md): clang-14 and libclang-rt-14-dev.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
$(FUZZ_BUILD)/Makefile:
	@command -v clang >/dev/null || { echo "fuzz-smoke needs clang: apt-get install clang-14 libclang-rt-14-dev llvm-14" >&2; exit 2; }
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON

fuzz-smoke: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz
	fuzz/smoke.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
