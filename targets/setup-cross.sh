#!/usr/bin/env bash
# Installs what cross-building glimpse for aarch64 and testing it under qemu needs, on
# Debian 12 (bookworm) x86-64, from Debian's own packages. Idempotent: installs only
# what is missing, and runs `apt-get update` only when it has to install something.
#
#   g++-aarch64-linux-gnu   cross compiler (+ the arm64 libc/libstdc++ it links against)
#   qemu-user               qemu-aarch64, to run the tests (-cpu cortex-a72 / cortex-a76 / max)
#   arm64 multiarch         libstb-dev:arm64, libjpeg62-turbo-dev:arm64 (image decoding) and the arm64 runtime
#                           (libc6, libstdc++6) that qemu-aarch64 loads the test programs with
#   host tools              cmake, ninja, pkg-config, file, dpkg-dev (cpack's .deb generator)
#   header-only deps        libeigen3-dev, doctest-dev (architecture: all)
#
# Not installed for arm64, so their providers are simply off in the cross builds
# (cmake/GlimpseDeps.cmake reports it): libdnnl-dev:arm64 cannot be co-installed with
# the amd64 one (both ship a different /usr/include/oneapi/dnnl/dnnl_config.h), and
# libxnnpack-dev is not Multi-Arch: same (installing :arm64 would remove :amd64).
#
# Nor are libcpp-httplib-dev:arm64 and its OpenSSL, zlib and brotli -dev packages: the cross
# builds leave `glimpse serve` out (tools/serve/CMakeLists.txt, docs/serve.md); a native build on
# the board (`make deps`) has it.
#
# Needs root (or sudo). Usage: targets/setup-cross.sh
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "setup-cross.sh: this host is $(dpkg --print-architecture); the cross setup is for amd64 hosts" >&2
    exit 1
fi

host_pkgs=(g++-aarch64-linux-gnu qemu-user cmake ninja-build pkg-config file dpkg-dev libeigen3-dev doctest-dev)
arm64_pkgs=(libc6:arm64 libstdc++6:arm64 libstb-dev:arm64 libjpeg62-turbo-dev:arm64)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

updated=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "setup-cross.sh: adding the arm64 architecture (multiarch)"
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
    updated=1
fi

missing=()
for p in "${host_pkgs[@]}" "${arm64_pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-cross.sh: installing ${missing[*]}"
    if [ $updated = 0 ]; then $SUDO apt-get update -qq; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup-cross.sh: everything is installed"
fi

aarch64-linux-gnu-g++ --version | head -n1
qemu-aarch64 --version | head -n1
