# Convenience wrapper around CMake.
#   make deps   install the Debian packages glimpse builds with (needs root or sudo)
#   make        build Release into build/
#   make test   build and run the test suite
#   make demo   build and caption the bundled sample scene with the bundled model
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
SUDO  ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DEB_PACKAGES = build-essential cmake ninja-build pkg-config \
               libeigen3-dev libdnnl-dev ocl-icd-opencl-dev libxnnpack-dev libstb-dev doctest-dev

# The SmolVLM-layout model trained in this project (docs/models.md), int8 text weights, on a
# held-out scene; the scene generator's caption of it is printed after the model's.
DEMO_TEXT   ?= models/bundled/scenes-smolvlm-q8_0-text.gguf
DEMO_MMPROJ ?= models/bundled/scenes-smolvlm-f16-mmproj.gguf
DEMO_IMAGE  ?= models/bundled/samples/1000000.png
DEMO_TRUTH  ?= models/bundled/samples/1000000.json
DEMO_PROMPT ?= Describe this image.

.PHONY: all deps configure build test test-isa demo clean

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
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_cpu_features || exit 1; \
	done

demo: build
	$(BUILD)/tools/glimpse/glimpse caption -m $(DEMO_TEXT) --mmproj $(DEMO_MMPROJ) \
	  --image $(DEMO_IMAGE) -p "$(DEMO_PROMPT)" --temp 0
	@[ ! -f $(DEMO_TRUTH) ] || sed -n 's/.*"caption": *"\([^"]*\)".*/ground truth: \1/p' $(DEMO_TRUTH)

clean:
	rm -rf $(BUILD)

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
