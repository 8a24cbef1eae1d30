# kerio_add_plugin(<target> SOURCES <files>...)
#
# Builds avir_<name>.so the way Kerio's avserver needs it: i386 or x86_64, one exported
# symbol, no RPATH, hardened, with avCommon.c (the simple API's glue) linked in.
# Included by the top-level build and by a plugin folder built on its own.
include_guard(GLOBAL)

set(KERIO_API_DIR "${CMAKE_CURRENT_LIST_DIR}")

if(NOT CMAKE_SIZEOF_VOID_P EQUAL 4 AND NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  message(FATAL_ERROR
    "Kerio avserver loads i386 or x86_64 plugins only, but this compiler builds "
    "${CMAKE_SIZEOF_VOID_P}-byte pointers. Configure with a toolchain of the project, e.g.\n"
    "  cmake -DCMAKE_TOOLCHAIN_FILE=<project>/cmake/toolchains/gcc.cmake -DKERIO_ARCH=i386 .\n"
    "(i386 needs Debian's gcc-multilib; KERIO_ARCH=x86_64 for today's 64-bit products).")
endif()

option(KERIO_WERROR "Treat compiler warnings as errors" OFF)

# The project's one set of warning flags: the plugins, avhost, the unit tests and the fuzz
# targets all link this (here, in api/, because a plugin built out of tree has only api/).
# -Wformat=2: outside text used as a format is an error.
add_library(kerio_warnings INTERFACE)
target_compile_options(kerio_warnings INTERFACE
  -Wall -Wextra -Wformat=2 $<$<BOOL:${KERIO_WERROR}>:-Werror>)

add_library(kerio_plugin_options INTERFACE)
target_include_directories(kerio_plugin_options INTERFACE "${KERIO_API_DIR}")
target_compile_definitions(kerio_plugin_options INTERFACE
  _FILE_OFFSET_BITS=64            # files over 2 GiB on a 32-bit target
  $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
# Reproducible builds: the debug info and __FILE__ strings name sources by
# canonical paths, never by where the clone, its build folder or its caches
# sit. The build-id is a checksum over the debug info, so one clone's path
# there would give every clone its own build-id. /usr/src/debug/<name> is where
# a debug-source package installs the sources for gdb. The general maps come
# first: zig's clang and gcc both let the last matching map win (clang's
# __FILE__ map picks the longest), so a later, deeper map (zig's lib/ under the
# clone's .nox, Boost under its .cache) overrides the clone's own.
if(NOT DEFINED KERIO_DEBUG_SOURCE_DIR)
  set(KERIO_DEBUG_SOURCE_DIR "/usr/src/debug/${PROJECT_NAME}")
endif()
add_library(kerio_source_paths INTERFACE)
target_compile_options(kerio_source_paths INTERFACE
  "-ffile-prefix-map=${CMAKE_SOURCE_DIR}=${KERIO_DEBUG_SOURCE_DIR}"
  # the folder the compiler runs in (DW_AT_comp_dir), wherever AVKIT_BUILD_ROOT puts it
  "-ffile-prefix-map=${CMAKE_BINARY_DIR}=${KERIO_DEBUG_SOURCE_DIR}"
  # an author's copy of api/ may sit beside their sources, not under them: named the
  # same wherever their folder is (here, it is under the source folder: the same path)
  "-ffile-prefix-map=${KERIO_API_DIR}=${KERIO_DEBUG_SOURCE_DIR}/api")
if(DEFINED KERIO_ZIG_LIB_DIR)  # set by cmake/toolchains/zig.cmake
  target_compile_options(kerio_source_paths INTERFACE
    "-ffile-prefix-map=${KERIO_ZIG_LIB_DIR}=/usr/src/debug/zig-${KERIO_ZIG_VERSION}/lib")
endif()

# kerio_map_source_prefix(<dir> <canonical>): a dependency's headers under <dir>
# (somewhere in a cache) are named <canonical>/... in the debug info and __FILE__.
function(kerio_map_source_prefix dir canonical)
  target_compile_options(kerio_source_paths INTERFACE "-ffile-prefix-map=${dir}=${canonical}")
endfunction()

target_link_libraries(kerio_plugin_options INTERFACE kerio_source_paths kerio_warnings)
target_compile_options(kerio_plugin_options INTERFACE
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
