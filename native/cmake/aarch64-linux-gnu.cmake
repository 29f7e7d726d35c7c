# Cross-compiles the native core for linux-arm64 with Debian's aarch64 toolchain
# (apt-get install g++-aarch64-linux-gnu). Used by scripts/test-arm64.sh:
#   cmake -S native -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=native/cmake/aarch64-linux-gnu.cmake
# The test program is linked statically so qemu-aarch64 runs it without an arm64 sysroot
# (LATENTKV_ARM64_STATIC=OFF links dynamically; then run it with qemu-aarch64 -L /usr/aarch64-linux-gnu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(LKV_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the cross compiler binaries")
set(CMAKE_C_COMPILER "${LKV_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${LKV_CROSS_PREFIX}g++")

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Run cross-built programs (try_run, ctest) under user-mode qemu when it is installed.
find_program(LKV_QEMU_AARCH64 qemu-aarch64)
if(LKV_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${LKV_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu")
endif()

option(LATENTKV_ARM64_STATIC "Link the arm64 executables statically (simplest under qemu-user)" ON)
if(LATENTKV_ARM64_STATIC)
  # -static with pthreads: the whole libpthread must be linked in (glibc 2.34+ has it in libc).
  set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -Wl,--whole-archive -lpthread -Wl,--no-whole-archive")
endif()
