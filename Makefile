# Convenience targets around CMake. `make quickstart` and `make check` are
# the two commands the README starts with.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CTEST_ARGS ?= --output-on-failure --timeout 600
# `test` and `asan` run two suites at a time: they mostly wait (delays,
# backoff, grace periods); those that assert wall-clock bounds are
# RUN_SERIAL (tests/CMakeLists.txt). CTEST_JOBS=1 runs one at a time.
CTEST_JOBS ?= 2

.PHONY: all build quickstart test asan check bench fuzz-smoke clean soak tsan valgrind

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
	cd $(BUILD) && ctest $(CTEST_ARGS) -j$(CTEST_JOBS)

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON

# The whole suite, then again under AddressSanitizer + UBSan.
asan: $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest $(CTEST_ARGS) -j$(CTEST_JOBS)

# `check` is what CI runs: the whole suite twice, then short versions of
# the hardening jobs below (docs/testing.md, "What CI runs"), sized so that
# the whole command stays near a quarter of an hour on two cores: TSan over
# the suites that drive thread lanes hardest, memcheck over the CLI's main
# paths in the normal build, and every fuzz target for CI_FUZZ_SECONDS.
# The full jobs are `make tsan`, `make valgrind` and `make fuzz-smoke`.
CI_TSAN_SUITES ?= test_batch test_deadletter test_prioq test_hist \
  test_link_remote test_proto test_backpressure test_fan \
  test_routing test_elastic test_shutdown test_tap test_metrics \
  test_partition_retry test_dedupe_partition test_window_partition \
  test_observe test_graph
CI_VALGRIND_TESTS ?= \
  'test_cli=cli/@(run_writes_the_report|sigint_drains_and_exits_cleanly)' \
  'test_shutdown=shutdown/sigterm_spill_then_resume' \
  'test_failed_output=*/*_process_lane' \
  'test_multihost=multihost/loopback_nodes' \
  'test_malformed=*/*' \
  'test_dlq=dlq/replay_completes_the_output_with_original_ids' \
  'test_partition_retry=*/*' \
  'test_metrics=metrics/final_scrape_matches_the_report'
CI_FUZZ_SECONDS ?= 10

check: test asan
	$(MAKE) tsan TSAN_TESTS='/($(subst $(eval) ,|,$(strip $(CI_TSAN_SUITES))))$$$$' \
	  TSAN_TARGETS='sluice_cli stages test_plugins $(CI_TSAN_SUITES)'
	$(MAKE) valgrind VALGRIND_BUILD=$(BUILD) \
	  VALGRIND_TESTS="$(CI_VALGRIND_TESTS)"
	$(MAKE) fuzz-smoke FUZZ_SECONDS=$(CI_FUZZ_SECONDS)

# Thread lanes under ThreadSanitizer (docs/testing.md, "ThreadSanitizer"):
# the unit and integration suites without process lanes (whole files by
# TSAN_EXCLUDE, single tests by TSAN_SKIP) and without the ZeroMQ bridge's
# RSS bound (TSan's shadow memory grows with the heap). Every report, from a
# suite or from a `sluice` it started, lands in $(TSAN_BUILD)/tsan-reports
# and fails the target. tsan_arena.so lets Criterion's sandbox find room
# beside TSan's shadow memory (tests/support/tsan_arena.c).
TSAN_BUILD   ?= build-tsan
TSAN_TESTS   ?= ^(unit|integration)/
TSAN_EXCLUDE ?= test_process_lane
TSAN_SKIP    ?= !(*/process_*|*process_lane*|*/slow_stage_blocks_the_sender_and_memory_stays_bounded)
# empty: build everything; else only these targets (the CLI, the plugins
# and the suites that TSAN_TESTS picks)
TSAN_TARGETS ?=
TSAN_DIR      = $(abspath $(TSAN_BUILD))
$(TSAN_BUILD)/Makefile:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TSAN=ON

tsan: $(TSAN_BUILD)/Makefile
	cmake --build $(TSAN_BUILD) -j$(JOBS) $(if $(strip $(TSAN_TARGETS)),--target $(TSAN_TARGETS))
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow \
	  -Wstrict-prototypes -shared -fPIC \
	  -o $(TSAN_BUILD)/tsan_arena.so tests/support/tsan_arena.c -ldl
	rm -rf $(TSAN_BUILD)/tsan-reports && mkdir -p $(TSAN_BUILD)/tsan-reports
	cd $(TSAN_BUILD) || exit 1; rc=0; \
	  LD_PRELOAD=$(TSAN_DIR)/tsan_arena.so \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(abspath tests/tsan.supp):log_path=$(TSAN_DIR)/tsan-reports/report \
	  CRITERION_TEST_PATTERN='$(TSAN_SKIP)' \
	  ctest $(CTEST_ARGS) -j$(CTEST_JOBS) -R '$(TSAN_TESTS)' -E '$(TSAN_EXCLUDE)' || rc=$$?; \
	  if [ -n "$$(ls tsan-reports)" ]; then \
	    cat tsan-reports/*; \
	    echo "tsan: $$(ls tsan-reports | wc -l) process(es) reported, in $(TSAN_DIR)/tsan-reports" >&2; \
	    rc=1; \
	  fi; \
	  exit $$rc

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
FUZZ_CC      ?= $(firstword $(shell command -v clang clang-14 2>/dev/null))
$(FUZZ_BUILD)/Makefile:
	@[ -n "$(FUZZ_CC)" ] || { echo "fuzz-smoke needs clang: apt-get install clang-14 libclang-rt-14-dev llvm-14" >&2; exit 2; }
	CC=$(FUZZ_CC) cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON

fuzz-smoke: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz
	fuzz/smoke.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Integration suites with the CLI under valgrind memcheck (docs/testing.md,
# "Valgrind"): SUITE=PATTERN pairs, PATTERN a Criterion --filter. Logs go
# to $(VALGRIND_BUILD)/valgrind/SUITE/; a memcheck error or a definite or
# indirect leak in any of them fails the target. Not part of `check`.
VALGRIND_BUILD ?= build-valgrind
VALGRIND_TESTS ?= \
  'test_malformed=*/*' \
  'test_sqlite_etl=*/*' \
  'test_cli=cli/@(check_lists_every_problem|run_writes_the_report|sigint_drains_and_exits_cleanly)' \
  'test_failed_output=*/*_process_lane' \
  'test_shutdown=shutdown/@(retries_exhausted_dead_letter|sigterm_spill_then_resume)' \
  'test_dlq=dlq/replay_completes_the_output_with_original_ids' \
  'test_partition_retry=*/*' \
  'test_metrics=metrics/@(final_scrape_matches_the_report|live_scrape_while_running)' \
  'test_multihost=multihost/loopback_nodes' \
  'test_record=record/source_with_event_time_is_byte_exact' \
  'test_replay=replay/record_then_replay_round_trip' \
  'test_stage_yaml=stage_yaml/every_test_file_passes'
# No suite runs a fan-out through the CLI, so a topology of its own does:
# broadcast to two stages, fan-in, round robin to two sinks. The same
# valgrind options as tests/support/testutil.c.
VALGRIND_FANOUT = {name: valgrind_fanout, stages: [ \
  {name: gen, plugin: generator, config: {count: 4000}}, \
  {name: a, plugin: fields, from: gen, workers: 2, config: {set: {b: a}}}, \
  {name: b, plugin: fields, from: gen, config: {set: {b: b}}}, \
  {name: both, plugin: fields, from: [a, b], fanout: round_robin, \
   config: {drop: [b]}}, \
  {name: drop, plugin: "null", from: both}, \
  {name: keep, plugin: file_sink, from: both, config: {path: out.jsonl}}]}
VALGRIND_MEMCHECK = --tool=memcheck --leak-check=full \
  --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  --track-fds=no --trace-children=no --child-silent-after-fork=yes \
  --num-callers=30 --suppressions=$(CURDIR)/tests/valgrind.supp
# (with VALGRIND_BUILD=$(BUILD), as `check` runs it, that tree's own rule)
ifneq ($(VALGRIND_BUILD),$(BUILD))
$(VALGRIND_BUILD)/Makefile:
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_BUILD_TYPE=Debug
endif

valgrind: $(VALGRIND_BUILD)/Makefile
	@command -v valgrind >/dev/null || { echo "make valgrind needs valgrind: apt-get install valgrind" >&2; exit 2; }
	cmake --build $(VALGRIND_BUILD) -j$(JOBS) --target sluice_cli stages \
	  test_plugins $(foreach s,$(subst ',,$(VALGRIND_TESTS)),$(firstword $(subst =, ,$(s))))
	@logs='$(abspath $(VALGRIND_BUILD))/valgrind'; rm -rf "$$logs"; \
	mkdir -p "$$logs"; fail=0; runs=0; t0=$$(date +%s); \
	scan() { set -- "$$1"/*.log; [ -e "$$1" ] || { echo 0 0 0 0; return; }; \
	  awk 'FNR == 1 { n++ } \
	    /ERROR SUMMARY:/ { done++; if ($$4 + 0 > 0) bad[FILENAME] = 1 } \
	    /(definitely|indirectly) lost:/ { v = $$4; gsub(",", "", v); \
	      lost += v; if (v + 0 > 0) bad[FILENAME] = 1 } \
	    END { nb = 0; for (f in bad) { nb++; print "    " f > "/dev/stderr" } \
	      printf "%d %d %d %d\n", n, n - done, nb, lost }' "$$@"; }; \
	line() { printf 'valgrind %-20s %-24s %3s CLI runs, %s with errors or leaks (%s bytes lost), %s killed before their summary, %4d s: %s\n' "$$@"; }; \
	for spec in $(VALGRIND_TESTS); do \
	  t=$${spec%%=*}; d="$$logs/$$t"; s=$$(date +%s); \
	  ( cd $(VALGRIND_BUILD)/tests && SLUICE_TEST_VALGRIND="$$d" \
	    ./$$t --jobs=1 "--filter=$${spec#*=}" ) >"$$d.out" 2>&1; rc=$$?; \
	  set -- $$(sed -n 's/.*Tested: \([0-9]*\) | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2 \3 \4/p' "$$d.out") 0 0 0 0; \
	  tests="$$2/$$1 passed"; ok=1; \
	  [ "$$rc" -eq 0 ] && [ "$$1" -gt 0 ] && [ "$$1" -eq "$$2" ] || ok=0; \
	  set -- $$(scan "$$d"); runs=$$((runs + $$1)); \
	  [ "$$1" -gt 0 ] && [ "$$3" -eq 0 ] || ok=0; \
	  if [ $$ok = 1 ]; then v=ok; else v="FAIL (see $$d.out)"; fail=1; fi; \
	  line "$$t" "$$tests" $$1 $$3 $$4 $$2 $$(( $$(date +%s) - s )) "$$v"; \
	done; \
	d="$$logs/fanout"; mkdir -p "$$d"; s=$$(date +%s); \
	printf '%s\n' '$(VALGRIND_FANOUT)' >"$$d/fanout.yaml"; \
	( cd "$$d" && valgrind $(VALGRIND_MEMCHECK) \
	  --log-file="$$d/%p.log" $(abspath $(VALGRIND_BUILD))/tools/sluice \
	  run fanout.yaml ) >"$$d.out" 2>&1; rc=$$?; \
	ok=1; [ $$rc -eq 0 ] && grep -q '8000 records into sinks .*ledger balanced' "$$d.out" || ok=0; \
	set -- $$(scan "$$d"); runs=$$((runs + $$1)); [ "$$3" -eq 0 ] || ok=0; \
	if [ $$ok = 1 ]; then v=ok; else v="FAIL (see $$d.out)"; fail=1; fi; \
	line fanout "exit $$rc" $$1 $$3 $$4 $$2 $$(( $$(date +%s) - s )) "$$v"; \
	if [ $$fail = 0 ]; then v=ok; else v=FAIL; fi; \
	echo "valgrind: $$runs CLI runs under memcheck in $$(( $$(date +%s) - t0 )) s: $$v (logs in $$logs)"; \
	exit $$fail

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD) $(VALGRIND_BUILD)
