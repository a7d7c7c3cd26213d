# Cross-compiling glimpse for 64-bit ARM Linux (Raspberry Pi 4/5, Jetson Orin) from an
# x86-64 Debian/Ubuntu host, using Debian's cross compiler and multiarch arm64 packages:
#   targets/setup-cross.sh   (g++-aarch64-linux-gnu, qemu-user, libstb-dev:arm64, ...)
#   cmake --preset rpi5 && cmake --build --preset rpi5
#
# Libraries come from /usr/lib/aarch64-linux-gnu (multiarch), headers from /usr/include
# (shared by every architecture), pkg-config files from the arm64 directories only.
# Tests run under qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR); its CPU model is taken
# from the QEMU_CPU environment variable (cortex-a72 = Pi 4, cortex-a76 = Pi 5, max).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(GLIMPSE_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${GLIMPSE_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${GLIMPSE_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${GLIMPSE_CROSS_TRIPLE})

# The cross toolchain's own runtime first, then the multiarch system (/usr/lib/aarch64-linux-gnu
# is found through CMAKE_LIBRARY_ARCHITECTURE). Programs (cmake helpers, pkg-config, qemu)
# always come from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${GLIMPSE_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# Never link an x86-64 library by accident.
list(APPEND CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)

# pkg-config reads only the arm64 (and architecture-independent) .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${GLIMPSE_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# ctest (and add_custom_command with the target's executables) run programs through qemu.
# With libc6:arm64 installed (multiarch) the dynamic loader and libraries are found in
# /lib and /usr/lib/aarch64-linux-gnu; otherwise fall back to the cross toolchain's tree.
find_program(GLIMPSE_QEMU_AARCH64 qemu-aarch64)
if(GLIMPSE_QEMU_AARCH64)
  if(EXISTS /lib/ld-linux-aarch64.so.1)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${GLIMPSE_QEMU_AARCH64})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${GLIMPSE_QEMU_AARCH64} -L /usr/${GLIMPSE_CROSS_TRIPLE})
  endif()
endif()
