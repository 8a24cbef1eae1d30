# kerio_add_unit_test(<name> SOURCES <files>... [NO_TEST])
#
# A unit test program of this machine's architecture build (build/<arch>/): the test's
# sources plus the code under test, C++17, the project's warning flags
# (kerio_warnings), and the shared CHECK header of netplugin/tests. Registered with
# CTest as <folder>.<name> (say clam.reply_parser_test) unless NO_TEST: a helper the
# pytest tests run with arguments of their own (limits_probe_dump).
# Both architectures' builds compile them; this x86_64 machine runs the i386 ones
# natively (libc6:i386), as it runs the i386 plugins.
include_guard(GLOBAL)

function(kerio_add_unit_test name)
  cmake_parse_arguments(ARG "NO_TEST" "" "SOURCES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES
    CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
  target_include_directories(${name} PRIVATE
    "${PROJECT_SOURCE_DIR}/netplugin/src" "${PROJECT_SOURCE_DIR}/netplugin/tests")
  target_link_libraries(${name} PRIVATE kerio_warnings)
  if(NOT ARG_NO_TEST)
    get_filename_component(_folder "${CMAKE_CURRENT_SOURCE_DIR}" DIRECTORY)
    get_filename_component(_folder "${_folder}" NAME)
    add_test(NAME ${_folder}.${name} COMMAND ${name})
    set_tests_properties(${_folder}.${name} PROPERTIES TIMEOUT 60)
  endif()
endfunction()
