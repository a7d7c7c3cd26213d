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

if(GLIMPSE_WITH_EIGEN)
  find_package(Eigen3 3.3 NO_MODULE)
  if(Eigen3_FOUND)
    target_link_libraries(glimpse_providers INTERFACE Eigen3::Eigen)
    target_compile_definitions(glimpse_providers INTERFACE GLIMPSE_HAVE_EIGEN=1)
  else()
    message(STATUS "glimpse: Eigen not found, Eigen provider disabled")
    set(GLIMPSE_WITH_EIGEN OFF)
  endif()
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
  if(NOT glimpse_dnnl_usable)
    set(GLIMPSE_WITH_ONEDNN OFF)
  elseif(dnnl_FOUND)
    target_link_libraries(glimpse_providers INTERFACE DNNL::dnnl)
    target_compile_definitions(glimpse_providers INTERFACE GLIMPSE_HAVE_ONEDNN=1)
  else()
    message(STATUS "glimpse: oneDNN not found, oneDNN provider disabled")
    set(GLIMPSE_WITH_ONEDNN OFF)
  endif()
endif()

if(GLIMPSE_WITH_XNNPACK)
  find_path(XNNPACK_INCLUDE_DIR xnnpack.h)
  find_library(XNNPACK_LIBRARY XNNPACK)
  find_library(PTHREADPOOL_LIBRARY pthreadpool)
  if(XNNPACK_INCLUDE_DIR AND XNNPACK_LIBRARY)
    target_include_directories(glimpse_providers INTERFACE ${XNNPACK_INCLUDE_DIR})
    target_link_libraries(glimpse_providers INTERFACE ${XNNPACK_LIBRARY})
    if(PTHREADPOOL_LIBRARY)
      target_link_libraries(glimpse_providers INTERFACE ${PTHREADPOOL_LIBRARY})
    endif()
    target_compile_definitions(glimpse_providers INTERFACE GLIMPSE_HAVE_XNNPACK=1)
  else()
    message(STATUS "glimpse: XNNPACK not found, XNNPACK provider disabled")
    set(GLIMPSE_WITH_XNNPACK OFF)
  endif()
endif()
