# Cross build for aarch64 Linux with Debian's cross compiler (apt: g++-aarch64-linux-gnu), run
# under qemu-user (apt: qemu-user): ctest starts every test through qemu-aarch64 with the
# target's loader and libraries from /usr/aarch64-linux-gnu.
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DLDEM_BUILD_PYTHON=OFF -DLDEM_WITH_CUDA=OFF -DLDEM_BUILD_TESTS=ON
# The extension ldem._core for this architecture's Python (headers and interpreter unpacked
# into a sysroot, run as qemu-aarch64 -L SYSROOT SYSROOT/usr/bin/python3.11): .ci/cross.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(LDEM_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${LDEM_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${LDEM_CROSS_TRIPLE}-g++)
set(CMAKE_FIND_ROOT_PATH /usr/${LDEM_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/${LDEM_CROSS_TRIPLE})
