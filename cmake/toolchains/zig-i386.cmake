# Release toolchain: zig's clang and libc++ (PyPI package "ziglang", pinned in
# ci/tools.txt) building for i386 Linux against an old glibc, so the plugins load
# on every system the products support. The glibc floor is set here and only here.
set(KERIO_GLIBC_FLOOR "2.12" CACHE STRING "Oldest glibc the plugins must load on")

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
set(KERIO_ZIG_TARGET "x86-linux-gnu.${KERIO_GLIBC_FLOOR}")

# The wrappers run `python -m ziglang` from the active environment (the nox venv).
set(CMAKE_C_COMPILER "${CMAKE_CURRENT_LIST_DIR}/../zig/zig-cc")
set(CMAKE_CXX_COMPILER "${CMAKE_CURRENT_LIST_DIR}/../zig/zig-c++")
set(CMAKE_AR "${CMAKE_CURRENT_LIST_DIR}/../zig/zig-ar")
set(CMAKE_RANLIB "${CMAKE_CURRENT_LIST_DIR}/../zig/zig-ranlib")
set(CMAKE_C_COMPILER_TARGET "${KERIO_ZIG_TARGET}")
set(CMAKE_CXX_COMPILER_TARGET "${KERIO_ZIG_TARGET}")

# libc++ is linked statically by zig; its symbols stay hidden behind exports.map.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
