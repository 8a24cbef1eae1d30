# Release toolchain: zig's clang and libc++ (PyPI package "ziglang", pinned in
# ci/tools.txt) building for i386 Linux against an old glibc, so the plugins load
# on every system the products support.
#
# The glibc floor is the GLIBC version of the default audit policy: the audit
# checks what this toolchain targets, from one file.
file(READ "${CMAKE_CURRENT_LIST_DIR}/../../packaging/audit-policies.json" _kerio_policies)
string(JSON _kerio_default GET "${_kerio_policies}" default)
string(JSON _kerio_count LENGTH "${_kerio_policies}" policies)
math(EXPR _kerio_last "${_kerio_count} - 1")
foreach(_i RANGE ${_kerio_last})
  string(JSON _kerio_name GET "${_kerio_policies}" policies ${_i} name)
  if(_kerio_name STREQUAL _kerio_default)
    string(JSON _kerio_floor GET "${_kerio_policies}" policies ${_i} symbol_versions GLIBC)
  endif()
endforeach()
if(NOT _kerio_floor)
  message(FATAL_ERROR "packaging/audit-policies.json: the default policy names no GLIBC version")
endif()
set(KERIO_GLIBC_FLOOR "${_kerio_floor}" CACHE STRING "Oldest glibc the plugins must load on" FORCE)

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
