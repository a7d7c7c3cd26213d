# What a user of the installed package does with the C interface: install the build into a
# scratch DESTDIR, compile examples/caption.c with the flags `pkg-config --cflags --libs glimpse-c`
# gives for that tree, run it against the bundled model, and compare its answer with the
# glimpse CLI's for the same image and settings.
#
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DSTAGE=... -DC_COMPILER=... -DPKG_CONFIG=... -DCLI=... -DLIBDIR=...
#         -P check_c_package.cmake
# (DESTDIR=STAGE: nothing is installed outside the scratch directory.)
foreach(var BUILD_DIR SOURCE_DIR STAGE C_COMPILER PKG_CONFIG CLI LIBDIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_c_package.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${STAGE}")
execute_process(COMMAND ${CMAKE_COMMAND} -E env "DESTDIR=${STAGE}" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix /usr
                OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
set(pcdir "${STAGE}/usr/${LIBDIR}/pkgconfig")
if(NOT EXISTS "${pcdir}/glimpse-c.pc" OR NOT EXISTS "${STAGE}/usr/include/glimpse.h")
  message(FATAL_ERROR "the install has no glimpse-c.pc in ${pcdir} or no include/glimpse.h")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${pcdir}" ${PKG_CONFIG} --cflags --libs glimpse-c
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND ${C_COMPILER} -std=c99 "${SOURCE_DIR}/examples/caption.c" ${flags} -o "${STAGE}/caption"
                COMMAND_ERROR_IS_FATAL ANY)

set(bundled "${SOURCE_DIR}/models/bundled")
set(args -m "${bundled}/scenes-smolvlm-q8_0-text.gguf" --mmproj "${bundled}/scenes-smolvlm-f16-mmproj.gguf"
         --image "${bundled}/samples/1000000.png" --temp 0 -n 24 -t 1)
execute_process(COMMAND ${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${STAGE}/usr/${LIBDIR}" "${STAGE}/caption" ${args}
                OUTPUT_VARIABLE from_package ERROR_VARIABLE package_err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the example built against the installed package failed (${rc}): ${package_err}")
endif()
execute_process(COMMAND "${CLI}" caption ${args} OUTPUT_VARIABLE from_cli ERROR_QUIET COMMAND_ERROR_IS_FATAL ANY)
if(NOT from_package STREQUAL from_cli OR from_cli STREQUAL "")
  message(FATAL_ERROR "the installed C interface answered\n[${from_package}]\nthe CLI\n[${from_cli}]")
endif()
message(STATUS "installed C interface: pkg-config glimpse-c, answer equals the CLI's: ${from_cli}")
file(REMOVE_RECURSE "${STAGE}")
