# HTTP/2 against real peers (included from tests/CMakeLists.txt), each
# bounded in time and labelled http:
#   http_h2_h2spec   h2spec's generic, http2 and hpack suites, strict mode too
#                    (only where h2spec is installed: scripts/deps.sh puts it
#                    in /usr/local/bin)
#   http_h2_clients  curl, nghttp and h2load, and the same requests over
#                    HTTP/1.1 and HTTP/2 through the router and middleware
#   http_h2_attacks  rapid reset, CONTINUATION and SETTINGS/PING floods, an
#                    HPACK bomb, zero-window readers, too many streams, a
#                    bad preface (Debian's python3-h2, run by /usr/bin/python3)
add_executable(http_h2_server http_h2_server.c)
target_link_libraries(http_h2_server PRIVATE tern)

# These drive the server from outside (h2spec, curl, python3-h2), exec'ing
# it directly: a cross build's server cannot run so, and the protocol logic
# they check is the same on every architecture (the C tests still run there).
if(CMAKE_CROSSCOMPILING)
  message(STATUS "tern: cross build: the h2spec, interop and attack tests are not registered")
  return()
endif()

find_program(TERN_H2SPEC h2spec PATHS /usr/local/bin /root/go/bin)
if(TERN_H2SPEC)
  add_test(NAME http_h2_h2spec
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/http_h2_h2spec.sh ${TERN_H2SPEC}
                   $<TARGET_FILE:http_h2_server>)
  set_tests_properties(http_h2_h2spec PROPERTIES LABELS http TIMEOUT 300)
else()
  message(STATUS "tern: h2spec not found; the http_h2_h2spec test is not registered "
                 "(scripts/deps.sh installs it)")
endif()

find_program(TERN_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(TERN_SYSTEM_PYTHON)
  add_test(NAME http_h2_clients
           COMMAND ${TERN_SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/http_h2_clients.py
                   $<TARGET_FILE:http_h2_server>)
  add_test(NAME http_h2_attacks
           COMMAND ${TERN_SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/http_h2_attacks.py
                   $<TARGET_FILE:http_h2_server>)
  set_tests_properties(http_h2_clients http_h2_attacks PROPERTIES
                       LABELS http TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
