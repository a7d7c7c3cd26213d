# Third-party dependencies, all from Debian packages:
#   apt-get install libeigen3-dev libdnnl-dev libxnnpack-dev libstb-dev libjpeg-dev doctest-dev pkg-config
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

# stb_image / stb_image_write: Debian's libstb ships the implementations in libstb.a.
pkg_check_modules(STB REQUIRED IMPORTED_TARGET stb)
add_library(glimpse::stb ALIAS PkgConfig::STB)

# libjpeg-turbo (libjpeg-dev -> libjpeg62-turbo-dev): checks a JPEG's entropy-coded data before
# stb decodes it, because stb 2.27 has undefined behaviour on corrupt Huffman data
# (runtime/image.cpp, jpeg_entropy_data_problem). Hardened and fuzzed by OSS-Fuzz.
pkg_check_modules(JPEG REQUIRED IMPORTED_TARGET libjpeg)
add_library(glimpse::jpeg ALIAS PkgConfig::JPEG)

# Matrix-multiply providers (oneDNN, XNNPACK, Eigen). Each is optional; a missing one
# turns its provider off with a message instead of failing the configure step.
add_library(glimpse_providers INTERFACE)
add_library(glimpse::providers ALIAS glimpse_providers)

# A provider's outcome. `found` names the variable that says whether it was found: then its
# libraries (ARGN) are linked and GLIMPSE_HAVE_<name>=1 defined; otherwise it says so and turns
# GLIMPSE_WITH_<name> off (a macro, so the OFF lands in the caller's scope).
macro(glimpse_provider found name label)
  if(${found})
    target_link_libraries(glimpse_providers INTERFACE ${ARGN})
    target_compile_definitions(glimpse_providers INTERFACE GLIMPSE_HAVE_${name}=1)
  else()
    message(STATUS "glimpse: ${label} not found, ${label} provider disabled")
    set(GLIMPSE_WITH_${name} OFF)
  endif()
endmacro()

if(GLIMPSE_WITH_EIGEN)
  find_package(Eigen3 3.3 NO_MODULE)
  glimpse_provider(Eigen3_FOUND EIGEN Eigen Eigen3::Eigen)
endif()

if(GLIMPSE_WITH_ONEDNN)
  # Debian's libdnnl-dev is built with the OpenCL GPU runtime and its CMake config calls
  # find_package(OpenCL REQUIRED), a hard configure error when ocl-icd-opencl-dev (only
  # "Recommends") is absent. Look for OpenCL first and turn the provider off instead.
  find_file(GLIMPSE_DNNL_CONFIG dnnl-config.cmake PATH_SUFFIXES cmake/dnnl lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/dnnl)
  set(glimpse_dnnl_usable ON)
  if(GLIMPSE_DNNL_CONFIG)
    file(STRINGS "${GLIMPSE_DNNL_CONFIG}" glimpse_dnnl_ocl REGEX "DNNL_GPU_RUNTIME \"OCL\"")
    if(glimpse_dnnl_ocl)
      find_package(OpenCL QUIET)
      if(NOT OpenCL_FOUND)
        message(STATUS "glimpse: oneDNN needs OpenCL's dev files (apt-get install ocl-icd-opencl-dev); oneDNN provider disabled")
        set(glimpse_dnnl_usable OFF)
      endif()
    endif()
  endif()
  if(glimpse_dnnl_usable)
    find_package(dnnl CONFIG QUIET)
  endif()
  if(glimpse_dnnl_usable)
    glimpse_provider(dnnl_FOUND ONEDNN oneDNN DNNL::dnnl)
  else()
    set(GLIMPSE_WITH_ONEDNN OFF)
  endif()
endif()

if(GLIMPSE_WITH_XNNPACK)
  find_path(XNNPACK_INCLUDE_DIR xnnpack.h)
  find_library(XNNPACK_LIBRARY XNNPACK)
  find_library(PTHREADPOOL_LIBRARY pthreadpool)
  set(glimpse_xnnpack_found OFF)
  set(glimpse_xnnpack_libraries ${XNNPACK_LIBRARY})
  if(XNNPACK_INCLUDE_DIR AND XNNPACK_LIBRARY)
    set(glimpse_xnnpack_found ON)
    target_include_directories(glimpse_providers INTERFACE ${XNNPACK_INCLUDE_DIR})
    if(PTHREADPOOL_LIBRARY)
      list(APPEND glimpse_xnnpack_libraries ${PTHREADPOOL_LIBRARY})
    endif()
  endif()
  glimpse_provider(glimpse_xnnpack_found XNNPACK XNNPACK ${glimpse_xnnpack_libraries})
endif()
