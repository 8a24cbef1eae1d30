# Developer toolchain: Debian's gcc/g++ for the architecture KERIO_ARCH (i386: -m32,
# packages gcc-multilib and g++-multilib; x86_64: -m64), read from
# cmake/architectures.json by kerio-arch.cmake. Plugins built with it need the build
# machine's glibc and libstdc++; the release uses zig.cmake. Kept to cross-check the code
# with a second compiler and standard library.
include("${CMAKE_CURRENT_LIST_DIR}/kerio-arch.cmake")
# Wrappers that always pass the architecture's flag: a -DCMAKE_C_FLAGS=... on the command
# line replaces the *_FLAGS_INIT values, and with them a flag kept there.
set(CMAKE_C_COMPILER "${CMAKE_CURRENT_LIST_DIR}/../gcc/gcc${KERIO_ARCH_GCC_FLAG}")
set(CMAKE_CXX_COMPILER "${CMAKE_CURRENT_LIST_DIR}/../gcc/g++${KERIO_ARCH_GCC_FLAG}")
set(CMAKE_LIBRARY_ARCHITECTURE "${KERIO_ARCH_LIBRARY_ARCHITECTURE}")
