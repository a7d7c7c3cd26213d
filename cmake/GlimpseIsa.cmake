# ISA translation units. A file's suffix says which instructions it may use; it gets
# exactly those flags, and the rest of the library keeps the target's baseline, so one
# binary runs on every CPU of its architecture and picks kernels at run time
# (targets/cpu_features.h).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(GLIMPSE_ARCH_X86 ON)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(GLIMPSE_ARCH_ARM64 ON)
else()
  message(FATAL_ERROR "glimpse: unsupported CMAKE_SYSTEM_PROCESSOR '${CMAKE_SYSTEM_PROCESSOR}' (x86_64 or aarch64)")
endif()

set(GLIMPSE_FLAGS_avx2    -mavx2 -mfma -mf16c)
set(GLIMPSE_FLAGS_avx512  -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16)
set(GLIMPSE_FLAGS_amx     -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mamx-tile -mamx-int8 -mamx-bf16)
# ARM: NEON is part of the armv8-a baseline. The dotprod/i8mm units name their
# architecture level in full (-march overrides the target's baseline -march, which
# comes earlier on the command line); -mno-outline-atomics from the rpi4 baseline
# stays in force for them too.
set(GLIMPSE_FLAGS_neon    "")
set(GLIMPSE_FLAGS_dotprod -march=armv8.2-a+dotprod+fp16)
set(GLIMPSE_FLAGS_i8mm    -march=armv8.2-a+dotprod+fp16+i8mm)
set(GLIMPSE_ISAS_x86   avx2 avx512 amx)
set(GLIMPSE_ISAS_arm64 neon dotprod i8mm)

# aarch64: no implicit FMA contraction. GCC contracts a*b+c into one fused multiply-add by
# default in C++ (-ffp-contract=fast) and every aarch64 core has FMA, while the x86-64
# baseline has none; with contraction the scalar and reference code would round
# differently on ARM than on x86, and differently between two code paths that are meant to
# agree bit for bit (image preprocessing vs its golden files, attention with and without
# taps). NEON kernels ask for FMA explicitly (vfmaq_f32), which this does not affect.
if(GLIMPSE_ARCH_ARM64)
  add_compile_options(-ffp-contract=off)
endif()

# Baseline flags per board (GLIMPSE_TARGET: rpi4, rpi5, jetson-orin, x86-64, native).
include(GlimpseTargets)

# glimpse_collect_sources(<out-var> <dir>): the .cpp files under <dir> that belong to
# this architecture, with per-file ISA flags set.
function(glimpse_collect_sources out dir)
  file(GLOB_RECURSE files CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.cpp")
  set(kept "")
  foreach(f IN LISTS files)
    get_filename_component(stem "${f}" NAME_WE)
    set(isa "")
    foreach(candidate IN LISTS GLIMPSE_ISAS_x86 GLIMPSE_ISAS_arm64)
      if(stem MATCHES "_${candidate}$")
        set(isa ${candidate})
      endif()
    endforeach()
    if(isa STREQUAL "")
      list(APPEND kept "${f}")
    elseif(GLIMPSE_ARCH_X86 AND isa IN_LIST GLIMPSE_ISAS_x86)
      list(APPEND kept "${f}")
      set_source_files_properties("${f}" PROPERTIES COMPILE_OPTIONS "${GLIMPSE_FLAGS_${isa}}")
    elseif(GLIMPSE_ARCH_ARM64 AND isa IN_LIST GLIMPSE_ISAS_arm64)
      list(APPEND kept "${f}")
      if(NOT "${GLIMPSE_FLAGS_${isa}}" STREQUAL "")
        set_source_files_properties("${f}" PROPERTIES COMPILE_OPTIONS "${GLIMPSE_FLAGS_${isa}}")
      endif()
    endif()
  endforeach()
  set(${out} "${kept}" PARENT_SCOPE)
endfunction()
