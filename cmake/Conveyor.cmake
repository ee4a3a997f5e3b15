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
