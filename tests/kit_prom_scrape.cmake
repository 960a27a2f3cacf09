# A real Prometheus server scrapes the example service's /metrics and the
# query API must give back what it served; skipped (exit 77) where
# prometheus is absent.  Included from tests/CMakeLists.txt.  (Not when
# cross-compiling: the script runs svc directly.)
if(CMAKE_CROSSCOMPILING)
  return()
endif()
add_test(NAME kit_metrics_prometheus_scrape
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/kit_prom_scrape.sh $<TARGET_FILE:svc>)
set_tests_properties(kit_metrics_prometheus_scrape PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77)
