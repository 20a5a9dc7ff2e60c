# Cross build for aarch64 Linux with Debian's cross compiler (apt: g++-aarch64-linux-gnu), run
# under qemu-user (apt: qemu-user): ctest starts every test through qemu-aarch64 with the
# target's loader and libraries from /usr/aarch64-linux-gnu.
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DLDEM_BUILD_PYTHON=OFF -DLDEM_WITH_CUDA=OFF -DLDEM_BUILD_TESTS=ON
# The extension ldem._core for this architecture's Python (headers and interpreter unpacked
# into a sysroot, run as qemu-aarch64 -L SYSROOT SYSROOT/usr/bin/python3.11): .ci/cross.sh.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
