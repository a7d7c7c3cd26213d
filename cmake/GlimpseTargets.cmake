# Board / distribution targets: the baseline instruction set of everything that is not
# an ISA translation unit (cmake/GlimpseIsa.cmake gives *_dotprod.cpp, *_i8mm.cpp,
# *_avx2.cpp, ... their own flags on top of it). Kernels above the baseline are chosen
# at run time (targets/cpu_features.h), so one binary per architecture runs on every
# board of that architecture and uses the best kernels the board has.
#
#   GLIMPSE_TARGET   baseline                                   boards
#   (empty)          the compiler's default (unchanged)         this machine (`make`)
#   native           the compiler's default                     this machine (preset "native")
#   rpi4             -march=armv8-a -mno-outline-atomics        Pi 4 (Cortex-A72: NEON, no dotprod, no LSE)
#   rpi5             -march=armv8-a, tuned for Cortex-A76       Pi 5 (dotprod), and any aarch64
#   jetson-orin      -march=armv8-a, tuned for Cortex-A78AE     Jetson Orin (dotprod), and any aarch64
#   x86-64           -march=x86-64-v2                           any x86-64 since Nehalem; AVX2/AVX-512
#                                                               kernels dispatched at run time
#
# rpi4 turns off GCC's outline atomics, as ncnn did for its Pi 4 "Illegal instruction"
# reports (ncnn #2409): atomics then compile to the LL/SC sequences every armv8.0 core
# runs, with no run-time helper involved. The other ARM targets keep GCC's default
# (outline atomics, which use LSE where the CPU has it).
set(GLIMPSE_TARGET "" CACHE STRING "Baseline target: rpi4, rpi5, jetson-orin, x86-64, native or empty (compiler default)")
set_property(CACHE GLIMPSE_TARGET PROPERTY STRINGS "" native rpi4 rpi5 jetson-orin x86-64)

set(GLIMPSE_TARGET_FLAGS "")
if(GLIMPSE_TARGET STREQUAL "rpi4")
  set(GLIMPSE_TARGET_ARCH arm64)
  set(GLIMPSE_TARGET_FLAGS -march=armv8-a -mtune=cortex-a72 -mno-outline-atomics)
elseif(GLIMPSE_TARGET STREQUAL "rpi5")
  set(GLIMPSE_TARGET_ARCH arm64)
  set(GLIMPSE_TARGET_FLAGS -march=armv8-a -mtune=cortex-a76)
elseif(GLIMPSE_TARGET STREQUAL "jetson-orin")
  set(GLIMPSE_TARGET_ARCH arm64)
  set(GLIMPSE_TARGET_FLAGS -march=armv8-a -mtune=cortex-a78ae)
elseif(GLIMPSE_TARGET STREQUAL "x86-64")
  set(GLIMPSE_TARGET_ARCH x86)
  set(GLIMPSE_TARGET_FLAGS -march=x86-64-v2 -mtune=generic)
elseif(GLIMPSE_TARGET STREQUAL "native" OR GLIMPSE_TARGET STREQUAL "")
  set(GLIMPSE_TARGET_ARCH "")
else()
  message(FATAL_ERROR "glimpse: unknown GLIMPSE_TARGET '${GLIMPSE_TARGET}' (rpi4, rpi5, jetson-orin, x86-64, native)")
endif()

if(GLIMPSE_TARGET_ARCH STREQUAL "arm64" AND NOT GLIMPSE_ARCH_ARM64)
  message(FATAL_ERROR "glimpse: GLIMPSE_TARGET=${GLIMPSE_TARGET} is an aarch64 target but this build compiles for "
                      "'${CMAKE_SYSTEM_PROCESSOR}'; use the preset (cmake --preset ${GLIMPSE_TARGET}), which sets "
                      "the cross toolchain targets/toolchains/aarch64-linux-gnu.cmake")
endif()
if(GLIMPSE_TARGET_ARCH STREQUAL "x86" AND NOT GLIMPSE_ARCH_X86)
  message(FATAL_ERROR "glimpse: GLIMPSE_TARGET=${GLIMPSE_TARGET} needs an x86-64 compiler (CMAKE_SYSTEM_PROCESSOR is '${CMAKE_SYSTEM_PROCESSOR}')")
endif()
if(GLIMPSE_TARGET_FLAGS AND GLIMPSE_NATIVE)
  message(FATAL_ERROR "glimpse: GLIMPSE_NATIVE=ON (-march=native) contradicts GLIMPSE_TARGET=${GLIMPSE_TARGET}")
endif()

if(GLIMPSE_TARGET_FLAGS)
  add_compile_options(${GLIMPSE_TARGET_FLAGS})
  string(JOIN " " _glimpse_flags_text ${GLIMPSE_TARGET_FLAGS})
  message(STATUS "glimpse: target ${GLIMPSE_TARGET}: baseline ${_glimpse_flags_text}")
endif()
