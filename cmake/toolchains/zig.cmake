# Release toolchain: zig's clang and libc++ (PyPI package "ziglang", pinned in
# ci/tools.txt) building for Linux on the architecture KERIO_ARCH (kerio-arch.cmake:
# i386 or x86_64, from cmake/architectures.json) against an old glibc, so the
# plugins load on every system the products support.
#
# The glibc floor is the GLIBC version of the architecture's audit policy: the audit
# checks what this toolchain targets, from one file.
include("${CMAKE_CURRENT_LIST_DIR}/kerio-arch.cmake")
file(READ "${CMAKE_CURRENT_LIST_DIR}/../../packaging/audit-policies.json" _kerio_policies)
string(JSON _kerio_count LENGTH "${_kerio_policies}" policies)
math(EXPR _kerio_last "${_kerio_count} - 1")
foreach(_i RANGE ${_kerio_last})
  string(JSON _kerio_name GET "${_kerio_policies}" policies ${_i} name)
  if(_kerio_name STREQUAL KERIO_ARCH_AUDIT_POLICY)
    string(JSON _kerio_floor GET "${_kerio_policies}" policies ${_i} symbol_versions GLIBC)
  endif()
endforeach()
if(NOT _kerio_floor)
  message(FATAL_ERROR "packaging/audit-policies.json: ${KERIO_ARCH}'s policy ${KERIO_ARCH_AUDIT_POLICY} names no GLIBC version")
endif()
set(KERIO_GLIBC_FLOOR "${_kerio_floor}" CACHE STRING "Oldest glibc the plugins must load on" FORCE)
set(KERIO_ZIG_TARGET "${KERIO_ARCH_ZIG_TARGET}.${KERIO_GLIBC_FLOOR}")

# The wrappers run zig from the ziglang package of the active environment (the nox venv).
# Its lib/ folder and version name zig's headers canonically (api/KerioPlugin.cmake).
if(DEFINED ENV{KERIO_PYTHON})
  set(_kerio_python "$ENV{KERIO_PYTHON}")
else()
  set(_kerio_python python3)
endif()
execute_process(
  COMMAND "${_kerio_python}" -c "import ziglang, pathlib; print(pathlib.Path(ziglang.__file__).resolve().parent)"
  OUTPUT_VARIABLE _kerio_zig_package OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _kerio_rc)
if(NOT _kerio_rc EQUAL 0)
  message(FATAL_ERROR "${_kerio_python} has no ziglang package: build through nox (./nox -s build-i386)")
endif()
execute_process(COMMAND "${_kerio_zig_package}/zig" version
  OUTPUT_VARIABLE KERIO_ZIG_VERSION OUTPUT_STRIP_TRAILING_WHITESPACE)
set(KERIO_ZIG_LIB_DIR "${_kerio_zig_package}/lib")
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
