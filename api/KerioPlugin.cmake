# kerio_add_plugin(<target> SOURCES <files>...)
#
# Builds avir_<name>.so the way Kerio's avserver needs it: 32-bit, one exported
# symbol, no RPATH, hardened, with avCommon.c (the simple API's glue) linked in.
# Included by the top-level build and by a plugin folder built on its own.
include_guard(GLOBAL)

set(KERIO_API_DIR "${CMAKE_CURRENT_LIST_DIR}")

if(NOT CMAKE_SIZEOF_VOID_P EQUAL 4)
  message(FATAL_ERROR
    "Kerio avserver loads 32-bit (i386) plugins only, but this compiler builds "
    "${CMAKE_SIZEOF_VOID_P}-byte pointers. Configure with an i386 toolchain, e.g.\n"
    "  cmake -DCMAKE_TOOLCHAIN_FILE=<project>/cmake/toolchains/gcc-m32.cmake .\n"
    "(needs Debian's gcc-multilib), or build on an i386 system.")
endif()

option(KERIO_WERROR "Treat compiler warnings as errors" OFF)

add_library(kerio_plugin_options INTERFACE)
target_include_directories(kerio_plugin_options INTERFACE "${KERIO_API_DIR}")
target_compile_definitions(kerio_plugin_options INTERFACE
  _FILE_OFFSET_BITS=64            # files over 2 GiB on a 32-bit target
  $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
# Reproducible plugins: no build or source folder in the debug info, whose
# checksum becomes the build-id that the stripped plugin keeps.
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(KERIO_PATH_MAP_FLAGS -fdebug-compilation-dir=. "-ffile-prefix-map=${CMAKE_SOURCE_DIR}=.")
else()
  set(KERIO_PATH_MAP_FLAGS "-ffile-prefix-map=${CMAKE_BINARY_DIR}=." "-ffile-prefix-map=${CMAKE_SOURCE_DIR}=.")
endif()
target_compile_options(kerio_plugin_options INTERFACE ${KERIO_PATH_MAP_FLAGS}
  -Wall -Wextra -Wformat=2 $<$<BOOL:${KERIO_WERROR}>:-Werror>  # -Wformat=2: outside text as a format is an error
  -g  # split off into debug/.build-id/ when staged, for the -dbgsym packages
  -fvisibility=hidden -fstack-protector-strong)
target_link_options(kerio_plugin_options INTERFACE
  "LINKER:--version-script=${KERIO_API_DIR}/exports.map"
  "LINKER:-z,relro" "LINKER:-z,now" "LINKER:-z,noexecstack" "LINKER:-z,defs"
  "LINKER:--build-id=sha1")

function(kerio_add_plugin target)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  if(NOT target MATCHES "^avir_[a-z0-9_]+$")
    message(FATAL_ERROR "kerio_add_plugin: '${target}' must be named avir_<name>")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES} "${KERIO_API_DIR}/avCommon.c")
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    SKIP_BUILD_RPATH ON
    INSTALL_RPATH ""
    LINK_DEPENDS "${KERIO_API_DIR}/exports.map")
  target_link_libraries(${target} PRIVATE kerio_plugin_options)
  find_package(Threads REQUIRED)
  target_link_libraries(${target} PRIVATE Threads::Threads)
endfunction()
