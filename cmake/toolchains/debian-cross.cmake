# The common part of the Debian cross toolchains (aarch64-linux-gnu.cmake, s390x-linux-gnu.cmake):
# Debian's cross compiler for CMAKE_SYSTEM_PROCESSOR, the target's libraries and headers from
# /usr/<triple>, and ctest running every test through qemu-<processor> with that loader.
# REQUIRES: CMAKE_SYSTEM_PROCESSOR is set (aarch64 or s390x) before this file is included.
set(CMAKE_SYSTEM_NAME Linux)
set(LDEM_CROSS_TRIPLE ${CMAKE_SYSTEM_PROCESSOR}-linux-gnu)
set(CMAKE_C_COMPILER ${LDEM_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${LDEM_CROSS_TRIPLE}-g++)
set(CMAKE_FIND_ROOT_PATH /usr/${LDEM_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${CMAKE_SYSTEM_PROCESSOR} -L /usr/${LDEM_CROSS_TRIPLE})
