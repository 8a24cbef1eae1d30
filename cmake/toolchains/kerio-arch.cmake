# The target architecture, a parameter of both toolchain files (zig.cmake, gcc.cmake):
# KERIO_ARCH (-DKERIO_ARCH=x86_64, else $ENV{KERIO_ARCH}, else the default of
# cmake/architectures.json) selects its facts from that file, the one table
# every tool reads:
#   KERIO_ARCH_ZIG_TARGET, KERIO_ARCH_GCC_FLAG, KERIO_ARCH_PROCESSOR,
#   KERIO_ARCH_LIBRARY_ARCHITECTURE, KERIO_ARCH_AUDIT_POLICY, KERIO_ARCH_POINTER_SIZE
file(READ "${CMAKE_CURRENT_LIST_DIR}/../architectures.json" _kerio_archs)
if(NOT KERIO_ARCH)
  if(DEFINED ENV{KERIO_ARCH} AND NOT "$ENV{KERIO_ARCH}" STREQUAL "")
    set(KERIO_ARCH "$ENV{KERIO_ARCH}")
  else()
    string(JSON KERIO_ARCH GET "${_kerio_archs}" default)
  endif()
endif()
string(JSON _kerio_arch ERROR_VARIABLE _kerio_error GET "${_kerio_archs}" architectures "${KERIO_ARCH}")
if(_kerio_error)
  message(FATAL_ERROR "KERIO_ARCH=${KERIO_ARCH} is not an architecture of cmake/architectures.json")
endif()
set(KERIO_ARCH "${KERIO_ARCH}" CACHE STRING "Target architecture (a key of cmake/architectures.json)" FORCE)
# try_compile projects (CMake's compiler checks) see the same architecture.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES KERIO_ARCH)
foreach(_kerio_pair zig_target:ZIG_TARGET gcc_flag:GCC_FLAG cmake_processor:PROCESSOR
        library_architecture:LIBRARY_ARCHITECTURE audit_policy:AUDIT_POLICY pointer_size:POINTER_SIZE)
  string(REPLACE ":" ";" _kerio_pair "${_kerio_pair}")
  list(GET _kerio_pair 0 _kerio_key)
  list(GET _kerio_pair 1 _kerio_var)
  string(JSON KERIO_ARCH_${_kerio_var} GET "${_kerio_arch}" ${_kerio_key})
endforeach()
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR "${KERIO_ARCH_PROCESSOR}")
