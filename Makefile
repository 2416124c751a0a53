# Entry points (README): `make demo` runs the main job end to end, `make test` passes the tests.
# Both work on a fresh Debian 12 machine as root: `setup` installs what is missing with apt-get.
BUILD ?= build
CC ?= gcc
JOBS ?= $(shell nproc)
DEMO_DIR ?= $(BUILD)/demo

# Sanitizer builds (issue 7): `make test-asan` runs every test under AddressSanitizer + UBSan,
# `make test-tsan` the threaded tests under ThreadSanitizer (TSan cannot be combined with ASan).
# ASan with gcc: clang 14 takes twice as long to build the ASan + UBSan SIMD kernels. TSan with
# clang: faster to build and run (under gcc's TSan the server test's 4 s shutdown grace can run out).
ASAN_CC ?= gcc
TSAN_CC ?= clang
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
# The ctest -R regex of the tests that run threads (the pool, the engine, the server, and the
# tokenizer / chat template tests that encode / render from several threads at once).
TSAN_TESTS ?= ^(test_threadpool|test_engine|test_server_sh|test_server_security|test_server_limits_sh|test_chat_template|test_tokenizer)$$
# Reports go to files under <build>/sanitizer-logs (log_path) rather than stderr, so that a report
# from a process whose exit status a test does not check (a server a script kills) still fails
# the target, which prints them. halt_on_error: the first report ends the process, non-zero.
ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:log_path=$(abspath $(ASAN_BUILD))/sanitizer-logs/asan \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(abspath $(ASAN_BUILD))/sanitizer-logs/ubsan
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$(abspath $(TSAN_BUILD))/sanitizer-logs/tsan

.PHONY: all setup build test demo clean test-asan test-tsan

all: build

setup:
	@./scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=$(CC) -DCMAKE_BUILD_TYPE=Release

build: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# san_test DIR,ENV,CTEST_ARGS: runs ctest in DIR under ENV, then fails if any sanitizer report
# file was written (printing them). The npm packages installed by `make test` are reused.
define san_test
	rm -rf $(1)/sanitizer-logs && mkdir -p $(1)/sanitizer-logs
	for d in npm-openai npm-hf-tokenizers; do \
	  if [ -d $(BUILD)/$$d ] && [ ! -e $(1)/$$d ]; then ln -s $(abspath $(BUILD))/$$d $(1)/$$d; fi; done
	cd $(1) && $(2) ctest --output-on-failure -j $(JOBS) $(3); rc=$$?; \
	  if [ -n "$$(ls sanitizer-logs)" ]; then echo "sanitizer reports in $(1)/sanitizer-logs:"; \
	    head -n 60 sanitizer-logs/*; exit 1; fi; exit $$rc
endef

test-asan: setup
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=$(ASAN_CC) -DCMAKE_BUILD_TYPE=Release -DCLLM_SANITIZE=ON -DCLLM_TSAN=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	$(call san_test,$(ASAN_BUILD),$(ASAN_ENV),)

test-tsan: setup
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_C_COMPILER=$(TSAN_CC) -DCMAKE_BUILD_TYPE=Release -DCLLM_TSAN=ON -DCLLM_SANITIZE=OFF
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	$(call san_test,$(TSAN_BUILD),$(TSAN_ENV),-R '$(TSAN_TESTS)')

demo: build
	@./scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

# ---- Soak (issue 7; RELIABILITY.md "Soak") ----
# `make soak`: builds, makes a tiny model, starts `cllm serve` with a 64-block KV pool (eviction
# and preemption guaranteed) and sends 1,000 requests at concurrency 32 through bench_soak
# (tests/test_soak.sh with the long settings; `make test` runs its short version), then prints the
# figures. The server runs as shipped (SOAK_SERVER_ENV sets environment variables for it, empty
# by default). SOAK_SEED picks another workload.
SOAK_REQUESTS ?= 1000
SOAK_CONCURRENCY ?= 32
SOAK_NUM_BLOCKS ?= 64
SOAK_SEED ?= 1
SOAK_SERVER_ENV ?=
SOAK_SHARED ?= $(abspath ../shared)
.PHONY: soak
soak: build
	SOAK_REQUESTS=$(SOAK_REQUESTS) SOAK_CONCURRENCY=$(SOAK_CONCURRENCY) SOAK_NUM_BLOCKS=$(SOAK_NUM_BLOCKS) \
	  SOAK_SEED=$(SOAK_SEED) SOAK_SERVER_ENV="$(SOAK_SERVER_ENV)" bash tests/test_soak.sh $(BUILD)/cllm $(SOAK_SHARED)

# ---- Fuzzing (issue 7; RELIABILITY.md "Fuzzing") ----
# `make fuzz FUZZ_SECONDS=30`: builds the libFuzzer targets tests/fuzz/fuzz_*.c into FUZZ_BUILD
# with clang whatever CC says (libFuzzer is clang's), the library instrumented for coverage,
# ASan and UBSan (-DCLLM_FUZZ=ON), then runs each target for FUZZ_SECONDS seconds on its corpus
# tests/fuzz/corpus/<target>/ (tests/fuzz/run.sh): any crash, leak, UB report, input slower
# than 10 s or memory blow-up fails the target, and the input is kept in FUZZ_BUILD/fuzz/artifacts.
FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= $(sort $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c))))
.PHONY: fuzz
fuzz: setup
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=$(FUZZ_CC) -DCMAKE_BUILD_TYPE=Release -DCLLM_FUZZ=ON \
	  -DCLLM_SANITIZE=OFF -DCLLM_TSAN=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- Valgrind (issue 7) ----
# `make test-valgrind`: every C unit test (tests/test_*.c; not the shell tests) of the Release build
# (-O2 -g, in BUILD) under valgrind memcheck, JOBS at a time: a memory error or a definite or
# indirect leak fails it (possible leaks and still-reachable memory do not). valgrind 3.19 cannot
# decode AVX-512, so the kernels run at CLLM_KERNELS=avx2; CLLM_TEST_QUICK=1 lets a test that is
# slow under valgrind shrink its sizes (it must still test). Each test's output and valgrind's
# report go to BUILD/valgrind-logs/; a failure prints both. VALGRIND_SKIP leaves tests out.
# Not in .ci/run yet: about 14 min on 2 cores, most of it test_engine (~11 min) and test_reference
# (~5.5 min), which have no CLLM_TEST_QUICK sizes yet.
VALGRIND ?= valgrind
VALGRIND_FLAGS ?= -q --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect
VALGRIND_TIMEOUT ?= 1800
VALGRIND_SKIP ?=
VALGRIND_TESTS ?= $(filter-out $(VALGRIND_SKIP),$(sort $(basename $(notdir $(wildcard tests/test_*.c)))))
.PHONY: test-valgrind
test-valgrind: build
	@command -v $(VALGRIND) >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; } || \
	  { echo "test-valgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
	rm -rf $(BUILD)/valgrind-logs && mkdir -p $(BUILD)/valgrind-logs
	cd $(BUILD) && printf '%s\n' $(VALGRIND_TESTS) | xargs -P $(JOBS) -I{} sh -c \
	  't0=$$(date +%s); CLLM_KERNELS=avx2 CLLM_TEST_QUICK=1 timeout $(VALGRIND_TIMEOUT) $(VALGRIND) $(VALGRIND_FLAGS) \
	     --log-file=valgrind-logs/{}.valgrind ./{} >valgrind-logs/{}.out 2>&1; rc=$$?; \
	   echo "valgrind {}: exit $$rc, $$(($$(date +%s) - t0)) s"; \
	   if [ $$rc -ne 0 ]; then tail -n 20 valgrind-logs/{}.out; head -n 80 valgrind-logs/{}.valgrind; exit 1; fi'
