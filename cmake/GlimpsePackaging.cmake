# Installation and Debian packages.
#
#   cmake --install build --prefix /usr/local          # or DESTDIR=... cmake --install build
#   cd build && cpack                                  # -> glimpse-vlm_<version>_<arch>.deb
#
# Installs the command-line tools (glimpse, and glimpse-mkmodel / glimpse-quantize /
# glimpse-bench when they are built), the static libraries, the public headers under
# include/glimpse/ (so `#include "runtime/status.h"` works with -I<prefix>/include/glimpse),
# a pkg-config file and a CMake package (glimpse::glimpse). Libraries go to the Debian
# multiarch directory (lib/<triplet>), so the arm64 and amd64 packages hold disjoint files.
# The .deb is named glimpse-vlm: Debian already has a package "glimpse" (a text indexer
# that also installs /usr/bin/glimpse), which this one therefore conflicts with.
if(NOT DEFINED CMAKE_INSTALL_LIBDIR AND CMAKE_LIBRARY_ARCHITECTURE)
  set(CMAKE_INSTALL_LIBDIR "lib/${CMAKE_LIBRARY_ARCHITECTURE}" CACHE PATH "Object code libraries (multiarch)")
endif()
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(GLIMPSE_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/glimpse")

# Installed consumers find the headers under include/glimpse; the build tree keeps the
# source directory.
set_target_properties(glimpse_core PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
  "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>;$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/glimpse>")

install(TARGETS glimpse_core glimpse_models glimpse glimpse_providers
        EXPORT glimpseTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(EXPORT glimpseTargets NAMESPACE glimpse:: DESTINATION ${GLIMPSE_CMAKE_DIR} COMPONENT dev)

foreach(dir runtime ops quant models targets)
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/${dir}/" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/glimpse/${dir}"
          COMPONENT dev FILES_MATCHING PATTERN "*.h" PATTERN "bundled" EXCLUDE)
endforeach()

set(GLIMPSE_INSTALLED_TOOLS "")
foreach(tool glimpse_cli glimpse-mkmodel glimpse-quantize glimpse-bench)
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
    list(APPEND GLIMPSE_INSTALLED_TOOLS ${tool})
  endif()
endforeach()

# pkg-config: the provider libraries the static libraries need at link time.
# What each enabled provider asks of the static libraries' users, in one place: its link
# flags here and its -dev package in the .deb's Depends (GLIMPSE_DEB_DEV_DEPENDS, below).
set(GLIMPSE_PC_PROVIDER_LIBS "")
set(GLIMPSE_DEB_DEV_DEPENDS "libstb-dev, libjpeg-dev, pkg-config")
if(GLIMPSE_WITH_ONEDNN)
  string(APPEND GLIMPSE_PC_PROVIDER_LIBS " -ldnnl")
  string(APPEND GLIMPSE_DEB_DEV_DEPENDS ", libdnnl-dev")
endif()
if(GLIMPSE_WITH_XNNPACK)
  string(APPEND GLIMPSE_PC_PROVIDER_LIBS " -lXNNPACK")
  if(PTHREADPOOL_LIBRARY)
    string(APPEND GLIMPSE_PC_PROVIDER_LIBS " -lpthreadpool")
  endif()
  string(APPEND GLIMPSE_DEB_DEV_DEPENDS ", libxnnpack-dev")
endif()
if(GLIMPSE_WITH_EIGEN)  # header-only: no link flag
  string(APPEND GLIMPSE_DEB_DEV_DEPENDS ", libeigen3-dev")
endif()
string(STRIP "${GLIMPSE_PC_PROVIDER_LIBS}" GLIMPSE_PC_PROVIDER_LIBS)
set(GLIMPSE_PC_PROVIDER_LIBS_SP "")
if(GLIMPSE_PC_PROVIDER_LIBS)
  set(GLIMPSE_PC_PROVIDER_LIBS_SP "${GLIMPSE_PC_PROVIDER_LIBS} ")
endif()
file(RELATIVE_PATH GLIMPSE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" GLIMPSE_PC_TO_PREFIX "${GLIMPSE_PC_TO_PREFIX}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/glimpse.pc.in" "${PROJECT_BINARY_DIR}/glimpse.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/glimpse.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig" COMPONENT dev)

# CMake package config.
foreach(flag GLIMPSE_WITH_EIGEN GLIMPSE_WITH_ONEDNN)
  if(${flag})
    set(${flag} ON)
  else()
    set(${flag} OFF)
  endif()
endforeach()
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/glimpseConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/glimpseConfig.cmake"
                              INSTALL_DESTINATION ${GLIMPSE_CMAKE_DIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/glimpseConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/glimpseConfig.cmake" "${PROJECT_BINARY_DIR}/glimpseConfigVersion.cmake"
        DESTINATION ${GLIMPSE_CMAKE_DIR} COMPONENT dev)

# ---- CPack: one .deb per architecture with everything above ----
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(GLIMPSE_DEB_ARCH arm64)
else()
  set(GLIMPSE_DEB_ARCH amd64)
endif()
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "glimpse-vlm")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "glimpse")
set(CPACK_PACKAGE_CONTACT "glimpse maintainers <maintainers@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Small vision-language models on edge CPUs: glimpse CLI, library, headers")
set(CPACK_PACKAGE_DESCRIPTION
    "glimpse runs small vision-language models (SmolVLM, LLaVA-style GGUF pairs) on CPUs. One binary per architecture picks its kernels at run time: NEON / dotprod / i8mm on aarch64 (Raspberry Pi 4 and 5, Jetson Orin), AVX2 / AVX-512 / AMX on x86-64. Includes the static libraries, headers, pkg-config and CMake package files, and the C interface as a shared library (libglimpse.so, glimpse.h).")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE "${GLIMPSE_DEB_ARCH}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "science")
set(CPACK_DEBIAN_PACKAGE_CONFLICTS "glimpse")
set(CPACK_STRIP_FILES ON)
# Shared-library dependencies of the programs, as dpkg-shlibdeps computes them (for a
# cross build it reads the arm64 multiarch packages), plus the -dev packages that the
# static libraries' users link against (GLIMPSE_DEB_DEV_DEPENDS, with the pkg-config flags above).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${GLIMPSE_DEB_DEV_DEPENDS}")
# ---- The C interface: libglimpse.so (SONAME libglimpse.so.MAJOR.MINOR), include/glimpse.h,
# pkg-config glimpse-c, CMake target glimpse::glimpse_c, and the examples as documentation ----
install(TARGETS glimpse_shared EXPORT glimpseTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES "${PROJECT_SOURCE_DIR}/include/glimpse.h" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
configure_file("${PROJECT_SOURCE_DIR}/cmake/glimpse-c.pc.in" "${PROJECT_BINARY_DIR}/glimpse-c.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/glimpse-c.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig" COMPONENT dev)
install(FILES "${PROJECT_SOURCE_DIR}/examples/caption.c" "${PROJECT_SOURCE_DIR}/examples/caption.py"
        DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/glimpse-vlm/examples" COMPONENT dev)
# The installed C interface as its users meet it (tests/install/check_c_package.cmake): a staged
# install, examples/caption.c compiled with `pkg-config glimpse-c`, its answer against the CLI's.
# Not in cross builds (the staged program is the target's) or sanitizer builds (an instrumented
# library needs an instrumented program).
if(GLIMPSE_BUILD_TESTS AND TARGET glimpse_cli AND PKG_CONFIG_EXECUTABLE AND NOT CMAKE_CROSSCOMPILING
   AND NOT GLIMPSE_SANITIZE AND NOT GLIMPSE_FUZZ)
  add_test(NAME install_c_package
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                   -DSTAGE=${PROJECT_BINARY_DIR}/install-check-stage -DC_COMPILER=${CMAKE_C_COMPILER}
                   -DPKG_CONFIG=${PKG_CONFIG_EXECUTABLE} -DCLI=$<TARGET_FILE:glimpse_cli> -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
                   -P ${PROJECT_SOURCE_DIR}/tests/install/check_c_package.cmake)
  set_tests_properties(install_c_package PROPERTIES TIMEOUT 300)
endif()

# A shlibs file, so packages built against libglimpse.so depend on this one; CPack adds the
# ldconfig calls for a library in the multiarch directory itself.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)

include(CPack)
