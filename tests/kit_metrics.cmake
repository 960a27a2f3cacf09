# The metrics scrape linted by promtool (`promtool check metrics`); skipped
# (exit 77) where promtool is absent.  Included from tests/CMakeLists.txt.
# (Not when cross-compiling: the script runs the test binary directly.)
if(CMAKE_CROSSCOMPILING)
  return()
endif()
add_test(NAME kit_metrics_promtool
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/kit_metrics_promtool.sh $<TARGET_FILE:test_kit_metrics>)
set_tests_properties(kit_metrics_promtool PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77)
