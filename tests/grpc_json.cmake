# The JSON mapping's test (grpc_json, label grpc) and the gateway's gRPC
# policies' tests (gateway_transcode, gateway_aggregate, label gateway),
# which need grpc_json/json_test.proto compiled: protoc-c for the mapping
# test, tern_grpc_generate (services too) for the gateway's.  Included from
# tests/CMakeLists.txt, whose glob leaves these three files to this one.
find_program(TERN_PROTOC_C protoc-c)
if(NOT TERN_PROTOC_C)
  message(STATUS "tern: gRPC JSON tests not built (protoc-c not found)")
  return()
endif()
set(tern_json_pb ${CMAKE_CURRENT_BINARY_DIR}/grpc_json_pb)
file(MAKE_DIRECTORY ${tern_json_pb})
# json_wkt_test.proto imports protobuf's well-known types, compiled here too
set(tern_json_protos ${CMAKE_CURRENT_SOURCE_DIR}/grpc_json/json_test.proto
    ${CMAKE_CURRENT_SOURCE_DIR}/grpc_json/json_wkt_test.proto)
set(tern_json_wkt google/protobuf/timestamp google/protobuf/duration google/protobuf/wrappers)
set(tern_json_pb_c ${tern_json_pb}/json_test.pb-c.c ${tern_json_pb}/json_wkt_test.pb-c.c)
set(tern_json_wkt_protos)
foreach(w IN LISTS tern_json_wkt)
  list(APPEND tern_json_pb_c ${tern_json_pb}/${w}.pb-c.c)
  list(APPEND tern_json_wkt_protos ${w}.proto)
endforeach()
add_custom_command(
  OUTPUT ${tern_json_pb_c}
  COMMAND ${TERN_PROTOC_C} --c_out=${tern_json_pb} -I${CMAKE_CURRENT_SOURCE_DIR}/grpc_json
          -I${TERN_PROTOBUF_PROTO_DIR} ${tern_json_protos} ${tern_json_wkt_protos}
  DEPENDS ${tern_json_protos})
add_library(tern_grpc_json_test_pb STATIC ${tern_json_pb_c})
target_include_directories(tern_grpc_json_test_pb PUBLIC ${tern_json_pb})
target_link_libraries(tern_grpc_json_test_pb PUBLIC PkgConfig::PROTOBUFC)

add_executable(test_grpc_json test_grpc_json.c)
target_link_libraries(test_grpc_json PRIVATE tern tern_grpc_json_test_pb m)
add_test(NAME grpc_json COMMAND test_grpc_json)
set_tests_properties(grpc_json PROPERTIES LABELS grpc TIMEOUT 120)

if(NOT TERN_GRPC_CODEGEN)
  return()
endif()
file(GLOB tern_gw_grpc_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_gateway_transcode*.c
     ${CMAKE_CURRENT_SOURCE_DIR}/test_gateway_aggregate*.c)
foreach(src ${tern_gw_grpc_tests})
  get_filename_component(t ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" name ${t})
  add_executable(${t} ${src})
  tern_grpc_generate(${t} grpc_json/json_test.proto IMPORT_DIRS grpc_json)
  target_link_libraries(${t} PRIVATE tern m)
  tern_layer_view(${t} gateway)       # the policies' interface (src/gateway/policy.h) is internal
  add_test(NAME ${name} COMMAND ${t})
  set_tests_properties(${name} PROPERTIES LABELS gateway TIMEOUT 120)
endforeach()
