# Helpers every plugin and test folder uses.

# cv_add_plugin(NAME SOURCES a.c b.c [LIBS target...])
# Builds plugins/NAME.so in the build tree (where `conveyor` looks by
# default), with hidden visibility so only the descriptor is exported.
function(cv_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  add_library(plugin_${name} MODULE ${P_SOURCES})
  set_target_properties(plugin_${name} PROPERTIES
    PREFIX "" OUTPUT_NAME ${name}
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/plugins
    C_VISIBILITY_PRESET hidden)
  target_include_directories(plugin_${name} PRIVATE ${PROJECT_SOURCE_DIR}/sdk/include)
  target_link_libraries(plugin_${name} PRIVATE ${P_LIBS})
  install(TARGETS plugin_${name} LIBRARY DESTINATION lib/conveyor/plugins)
  set_property(GLOBAL APPEND PROPERTY CONVEYOR_PLUGIN_TARGETS plugin_${name})
endfunction()

# cv_add_unit_test(NAME SOURCES a.c [LIBS target...])
# A CMocka test linked with the engine core and the stage harness, run by
# ctest with the label "unit".
function(cv_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  if(NOT CONVEYOR_TESTS)
    return()
  endif()
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/sdk/include
                                             ${PROJECT_SOURCE_DIR}/engine)
  target_link_libraries(${name} PRIVATE conveyor_stage_harness conveyor_core PkgConfig::CMOCKA ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

# cv_add_integration_test(NAME SCRIPT tests/x.py [TIMEOUT s] [LABELS l...])
# Runs a Python script against the built engine. The script finds the
# binary, plugins and sources through CONVEYOR_BIN, CONVEYOR_PLUGIN_DIR,
# CONVEYOR_SOURCE_DIR and CONVEYOR_BUILD_DIR.
function(cv_add_integration_test name)
  cmake_parse_arguments(T "" "SCRIPT;TIMEOUT" "LABELS;ARGS" ${ARGN})
  if(NOT CONVEYOR_TESTS)
    return()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name}
    COMMAND python3 ${T_SCRIPT} ${T_ARGS}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES
    LABELS "integration;${T_LABELS}"
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "CONVEYOR_BIN=$<TARGET_FILE:conveyor>;CONVEYOR_PLUGIN_DIR=${CMAKE_BINARY_DIR}/plugins;CONVEYOR_SOURCE_DIR=${PROJECT_SOURCE_DIR};CONVEYOR_BUILD_DIR=${CMAKE_BINARY_DIR};CONVEYOR_SANITIZE=$<BOOL:${CONVEYOR_SANITIZE}>")
endfunction()

# cv_sdk_test_archive()
# Merges conveyor_stage_harness and the static libraries it links,
# transitively, into ${CMAKE_BINARY_DIR}/libconveyor-sdk-test.a (target
# conveyor_sdk_test), installed by component sdk-test. Called deferred, at the
# end of the configuration, so that every library target exists.
function(cv_sdk_test_archive)
  set(out ${CMAKE_BINARY_DIR}/libconveyor-sdk-test.a)
  set(todo conveyor_stage_harness)
  set(seen "")
  set(files "")
  set(targets "")
  while(todo)
    list(POP_FRONT todo t)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" t "${t}")
    if(NOT TARGET ${t} OR t IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${t})
    get_target_property(aliased ${t} ALIASED_TARGET)
    if(aliased)
      list(APPEND todo ${aliased})
      continue()
    endif()
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "STATIC_LIBRARY")
      list(APPEND files "$<TARGET_FILE:${t}>")
      list(APPEND targets ${t})
    endif()
    get_target_property(deps ${t} INTERFACE_LINK_LIBRARIES)
    if(deps)
      list(APPEND todo ${deps})
    endif()
  endwhile()
  string(JOIN "|" inputs ${files})
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DAR=${CMAKE_AR} -DOUT=${out} -DIN=${inputs}
            -P ${PROJECT_SOURCE_DIR}/cmake/merge_archives.cmake
    DEPENDS ${targets} ${PROJECT_SOURCE_DIR}/cmake/merge_archives.cmake
    COMMENT "Merging the SDK test harness archive"
    VERBATIM)
  add_custom_target(conveyor_sdk_test ALL DEPENDS ${out})
  install(FILES ${out} DESTINATION lib COMPONENT sdk-test)
endfunction()
