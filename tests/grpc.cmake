# gRPC tests (label grpc): tests/grpc/test_grpc_*.c, with grpc_test.proto
# compiled by protoc-c for C and by protoc for grpcio (grpc_peer.py, the
# real peer, run with Debian's /usr/bin/python3).  Included from
# tests/CMakeLists.txt.  The grpcio tests are not registered in a cross
# build (they run Python beside the test binary); test_grpc_wire is.
find_program(TERN_PROTOC_C protoc-c)
find_program(TERN_PROTOC protoc)
if(NOT TERN_PROTOC_C)
  message(STATUS "tern: gRPC tests not built (protoc-c not found)")
  return()
endif()
set(tern_grpc_pb ${CMAKE_CURRENT_BINARY_DIR}/grpc_pb)
file(MAKE_DIRECTORY ${tern_grpc_pb})
set(tern_grpc_proto ${CMAKE_CURRENT_SOURCE_DIR}/grpc/grpc_test.proto)
add_custom_command(
  OUTPUT ${tern_grpc_pb}/grpc_test.pb-c.c ${tern_grpc_pb}/grpc_test.pb-c.h
  COMMAND ${TERN_PROTOC_C} --c_out=${tern_grpc_pb} -I${CMAKE_CURRENT_SOURCE_DIR}/grpc ${tern_grpc_proto}
  DEPENDS ${tern_grpc_proto})
set(tern_grpc_py_deps)
if(TERN_PROTOC)
  add_custom_command(
    OUTPUT ${tern_grpc_pb}/grpc_test_pb2.py
    COMMAND ${TERN_PROTOC} --python_out=${tern_grpc_pb} -I${CMAKE_CURRENT_SOURCE_DIR}/grpc ${tern_grpc_proto}
    DEPENDS ${tern_grpc_proto})
  set(tern_grpc_py_deps ${tern_grpc_pb}/grpc_test_pb2.py)
endif()
add_library(tern_grpc_test_pb STATIC ${tern_grpc_pb}/grpc_test.pb-c.c ${tern_grpc_py_deps})
target_include_directories(tern_grpc_test_pb PUBLIC ${tern_grpc_pb})
target_link_libraries(tern_grpc_test_pb PUBLIC PkgConfig::PROTOBUFC)

file(GLOB tern_grpc_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/grpc/test_grpc_*.c)
foreach(src ${tern_grpc_tests})
  get_filename_component(t ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" name ${t})
  # the grpcio tests: not in a cross build, nor without protoc (no Python messages)
  if(name MATCHES "^grpc_(server|client)$" AND (CMAKE_CROSSCOMPILING OR NOT TERN_PROTOC))
    continue()
  endif()
  add_executable(${t} ${src})
  target_link_libraries(${t} PRIVATE tern tern_grpc_test_pb m)
  if(name STREQUAL "grpc_wire")
    tern_layer_view(${t} grpc)
  endif()
  target_compile_definitions(${t} PRIVATE TERN_TEST_SRC_DIR="${CMAKE_CURRENT_SOURCE_DIR}"
                             TERN_TEST_PB_DIR="${tern_grpc_pb}")
  add_test(NAME ${name} COMMAND ${t})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120 LABELS grpc SKIP_RETURN_CODE 77)
endforeach()
