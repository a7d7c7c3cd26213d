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
               libeigen3-dev libdnnl-dev libxnnpack-dev libstb-dev doctest-dev

DEMO_TEXT   ?= models/bundled/scenes-smolvlm-text.gguf
DEMO_MMPROJ ?= models/bundled/scenes-smolvlm-mmproj.gguf
DEMO_IMAGE  ?= models/bundled/samples/scene.png
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
	  GLIMPSE_MAX_ISA=$$isa $(BUILD)/tests/test_cpu_features || exit 1; \
	done

demo: build
	$(BUILD)/tools/glimpse/glimpse caption -m $(DEMO_TEXT) --mmproj $(DEMO_MMPROJ) \
	  --image $(DEMO_IMAGE) -p "$(DEMO_PROMPT)" --temp 0

clean:
	rm -rf $(BUILD)
