# Cross build for s390x Linux with Debian's cross compiler (apt: g++-s390x-linux-gnu), run
# under qemu-user (apt: qemu-user): ctest starts every test through qemu-s390x with the
# target's loader and libraries from /usr/s390x-linux-gnu.
#   cmake -S . -B build-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/s390x-linux-gnu.cmake \
#     -DLDEM_BUILD_PYTHON=OFF -DLDEM_WITH_CUDA=OFF -DLDEM_BUILD_TESTS=ON
# The extension ldem._core for this architecture's Python (headers and interpreter unpacked
# into a sysroot, run as qemu-s390x -L SYSROOT SYSROOT/usr/bin/python3.11): .ci/cross.sh.
set(CMAKE_SYSTEM_PROCESSOR s390x)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
