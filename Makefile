# Convenience wrapper around CMake.
#   make deps   install the Debian packages glimpse builds with (needs root or sudo)
#   make        build Release into build/
#   make test   build and run the test suite
#   make demo   build and caption the bundled sample scene with the bundled model
#   make test-asan   the test suite built with ASan + UBSan into build-asan/
#   make fuzz-smoke  the libFuzzer targets (clang), FUZZ_SMOKE_TIME seconds each, into build-fuzz/
#                    (make deps-fuzz installs clang and libFuzzer's runtime)
#   make fuzz        the same for FUZZ_TIME seconds each (tests/fuzz/README.md)
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
SUDO  ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DEB_PACKAGES = build-essential cmake ninja-build pkg-config \
               libeigen3-dev libdnnl-dev ocl-icd-opencl-dev libxnnpack-dev libstb-dev libjpeg-dev doctest-dev \
               libcpp-httplib-dev nlohmann-json3-dev python3

# The SmolVLM-layout model trained in this project (docs/models.md), int8 text weights, on a
# held-out scene; the scene generator's caption of it is printed after the model's.
DEMO_TEXT   ?= models/bundled/scenes-smolvlm-q8_0-text.gguf
DEMO_MMPROJ ?= models/bundled/scenes-smolvlm-f16-mmproj.gguf
DEMO_IMAGE  ?= models/bundled/samples/1000000.png
DEMO_TRUTH  ?= models/bundled/samples/1000000.json
DEMO_PROMPT ?= Describe this image.

.PHONY: all deps configure build test test-isa demo clean test-asan deps-fuzz fuzz-build fuzz-smoke fuzz

all: build

deps:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES)

configure:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The kernel tests once per instruction-set cap, so every SIMD path and its scalar
# reference run on this machine (levels the CPU lacks are skipped by the tests).
test-isa: build
	for isa in scalar avx2 avx512; do \
	  echo "== GLIMPSE_MAX_ISA=$$isa"; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_matmul_kernels || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_op_variants || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_prune_score || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_query_key_score || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_attention_kvq || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_cpu_features || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_dpc_cluster || exit 1; \
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_kv_cache_mixed || exit 1; \
	done

demo: build
	$(BUILD)/tools/glimpse/glimpse caption -m $(DEMO_TEXT) --mmproj $(DEMO_MMPROJ) \
	  --image $(DEMO_IMAGE) -p "$(DEMO_PROMPT)" --temp 0
	@[ ! -f $(DEMO_TRUTH) ] || sed -n 's/.*"caption": *"\([^"]*\)".*/ground truth: \1/p' $(DEMO_TRUTH)

clean:
	rm -rf $(BUILD)

# ---- Sanitizers and fuzzing ----
# test-asan: every test built with AddressSanitizer + UndefinedBehaviorSanitizer (GLIMPSE_SANITIZE)
# in its own build directory. UB aborts (-fno-sanitize-recover), leaks fail the test (LSan);
# tests/sanitizers/lsan.supp names the one accepted leak (oneDNN handles in packed weights).
# ASAN_CTEST_EXCLUDE: a ctest -E regex of tests to skip (empty: the whole suite runs).
ASAN_BUILD ?= build-asan
ASAN_CTEST_EXCLUDE ?=
SANITIZER_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:check_initialization_order=1:strict_init_order=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0

test-asan:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGLIMPSE_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target glimpse_tests
	cd $(ASAN_BUILD) && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS) $(if $(ASAN_CTEST_EXCLUDE),-E '$(ASAN_CTEST_EXCLUDE)')

# libFuzzer targets (tests/fuzz/), built with clang, ASan and UBSan into build-fuzz/.
# fuzz-smoke: each target FUZZ_SMOKE_TIME seconds (CI); fuzz: FUZZ_TIME seconds each.
FUZZ_BUILD ?= build-fuzz
FUZZ_TARGETS ?= gguf image chat_template json tokenizer pruning_plan
# The smoke (CI) is reproducible: FUZZ_SMOKE_RUNS executions per target from seed FUZZ_SEED,
# FUZZ_SMOKE_TIME seconds only as a cap (tests/fuzz/run.sh). `make fuzz` explores (random seed).
FUZZ_SMOKE_RUNS ?= 100000
FUZZ_SEED ?= 1
FUZZ_SMOKE_TIME ?= 60
FUZZ_TIME ?= 600
# clang and libFuzzer's runtime (libclang-rt-dev is only a Recommends of clang on Debian 12,
# and deps installs without recommends).
FUZZ_PACKAGES = clang libclang-rt-dev

deps-fuzz:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(FUZZ_PACKAGES)

fuzz-build:
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DGLIMPSE_FUZZ=ON -DGLIMPSE_BUILD_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target glimpse_fuzzers

fuzz-smoke: fuzz-build
	FUZZ_RUNS=$(FUZZ_SMOKE_RUNS) FUZZ_SEED=$(FUZZ_SEED) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_TIME) $(FUZZ_TARGETS)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

# ---- Boards (targets/): cross builds for aarch64 from an x86-64 Debian host ----
# `make rpi4` / `make rpi5` / `make jetson`: install the cross toolchain and arm64
# packages if missing (targets/setup-cross.sh, needs root or sudo), cross-build the
# preset into build-<board>/ and package it (build-<board>/glimpse-vlm_<version>_arm64.deb).
# `make test-rpi4` (etc.): the same build, then the whole test suite under qemu-aarch64
# as a Pi 4 (cortex-a72), a Pi 5 (cortex-a76) and an i8mm core (max).
# `make deb`: the x86-64 distributable build (preset x86-64) and its amd64 .deb.
.PHONY: rpi4 rpi5 jetson test-rpi4 test-rpi5 test-jetson deb

rpi4 rpi5 jetson:
	targets/setup-cross.sh
	cmake --preset $@
	cmake --build --preset $@ -j $(JOBS)
	cd build-$@ && cpack -G DEB

test-rpi4 test-rpi5 test-jetson:
	JOBS=$(JOBS) targets/test-aarch64.sh $(patsubst test-%,%,$@)

deb:
	cmake --preset x86-64
	cmake --build --preset x86-64 -j $(JOBS)
	cd build-x86-64 && cpack -G DEB
