# The hello example against real HTTP clients (Python's http.client, curl,
# raw sockets) and a SIGTERM under load.  Included from tests/CMakeLists.txt.
add_test(NAME http_real_clients
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/http_real_clients.py $<TARGET_FILE:hello>)
set_tests_properties(http_real_clients PROPERTIES TIMEOUT 120)
if(CMAKE_CROSSCOMPILING_EMULATOR)
  string(REPLACE ";" " " tern_wrap "${CMAKE_CROSSCOMPILING_EMULATOR}")
  set_tests_properties(http_real_clients PROPERTIES ENVIRONMENT "TERN_TEST_WRAP=${tern_wrap}")
endif()
