# Developer toolchain: Debian's gcc/g++ with -m32 (packages gcc-multilib and
# g++-multilib). Plugins built with it need the build machine's glibc and
# libstdc++; the release uses zig-i386.cmake. Kept to cross-check the code with
# a second compiler and standard library.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
# Wrappers that always pass -m32: a -DCMAKE_C_FLAGS=... on the command line
# replaces the *_FLAGS_INIT values, and with them a flag kept there.
set(CMAKE_C_COMPILER "${CMAKE_CURRENT_LIST_DIR}/../gcc-m32/gcc-m32")
set(CMAKE_CXX_COMPILER "${CMAKE_CURRENT_LIST_DIR}/../gcc-m32/g++-m32")
set(CMAKE_LIBRARY_ARCHITECTURE i386-linux-gnu)
