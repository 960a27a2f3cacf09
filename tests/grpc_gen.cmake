# The gRPC code generation's tests (label grpc), included from
# tests/CMakeLists.txt; only where the plugin runs (TERN_GRPC_CODEGEN, see
# cmake/grpc_gen.cmake):
#   grpc_codegen            tests/grpc_gen/test_grpc_codegen.c: a .proto with a dotted
#                           package, nested messages and all four method kinds, made by
#                           tern_grpc_generate, served and called through its stubs;
#                           reflection's descriptor reader on its descriptor
#   grpc_health             tests/grpc_gen/test_grpc_health.c: grpc.health.v1 (Check,
#                           Watch) through stubs generated from grpc-proto's health.proto
#   grpc_codegen_compile    tests/grpc_gen/codegen_compile.sh: the generated code of that
#                           .proto and of grpc-proto's interop files compiles with
#                           -Werror under gcc and clang (and the headers as C++); the
#                           plugin's errors reach protoc
#   grpc_install           tests/grpc_gen/install_grpc.sh: tern installed into a temporary
#                           prefix builds the greeter with find_package(tern) and
#                           tern_grpc_generate, and it runs (not in sanitizer builds)
#   grpc_interop_h2c, _tls  tests/grpc_gen/grpc_interop.py: examples/grpc-interop against
#                           grpcio both ways, health and reflection (not in a cross build)
if(NOT TERN_GRPC_CODEGEN)
  return()
endif()

add_executable(test_grpc_codegen grpc_gen/test_grpc_codegen.c)
tern_grpc_generate(test_grpc_codegen grpc_gen/codegen.proto
  ${TERN_PROTOBUF_PROTO_DIR}/google/protobuf/descriptor.proto ${TERN_PROTOBUF_PROTO_DIR}/google/protobuf/empty.proto
  IMPORT_DIRS grpc_gen ${TERN_PROTOBUF_PROTO_DIR})
target_link_libraries(test_grpc_codegen PRIVATE tern)
tern_layer_view(test_grpc_codegen grpc)      # the descriptor reader is internal
target_compile_definitions(test_grpc_codegen PRIVATE TERN_TEST_SRC_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
add_test(NAME grpc_codegen COMMAND test_grpc_codegen)
set_tests_properties(grpc_codegen PROPERTIES LABELS grpc TIMEOUT 120)

# grpc.health.v1 through stubs generated here from grpc-proto's health.proto
# (the test's protoc-c copy links beside the library's renamed one)
add_executable(test_grpc_health grpc_gen/test_grpc_health.c)
tern_grpc_generate(test_grpc_health ${TERN_GRPC_PROTO_DIR}/grpc/health/v1/health.proto
  IMPORT_DIRS ${TERN_GRPC_PROTO_DIR})
target_link_libraries(test_grpc_health PRIVATE tern)
add_test(NAME grpc_health COMMAND test_grpc_health)
set_tests_properties(grpc_health PROPERTIES LABELS grpc TIMEOUT 120)

if(CMAKE_CROSSCOMPILING)
  return()
endif()

find_program(TERN_CLANG clang)
add_test(NAME grpc_codegen_compile
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/grpc_gen/codegen_compile.sh $<TARGET_FILE:protoc-gen-tern-grpc>
          ${TERN_PROTOC} ${TERN_PROTOC_C} ${TERN_GRPC_PROTO_DIR} ${TERN_PROTOBUF_PROTO_DIR} ${PROJECT_SOURCE_DIR}/include
          ${CMAKE_CURRENT_SOURCE_DIR}/grpc_gen "${TERN_CLANG}")
set_tests_properties(grpc_codegen_compile PROPERTIES LABELS grpc TIMEOUT 300)

# the installed package's tern_grpc_generate and plugin build the greeter
if(TERN_SANITIZE STREQUAL "" AND NOT TERN_FUZZ)
  add_test(NAME grpc_install
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/grpc_gen/install_grpc.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  # install_readme installs the same build (its tern.pc is written in the
  # build tree at install time): never both at once under ctest -j
  set_tests_properties(grpc_install PROPERTIES LABELS grpc TIMEOUT 300 RESOURCE_LOCK tern_install)
  if(TEST install_readme)
    set_tests_properties(install_readme PROPERTIES RESOURCE_LOCK tern_install)
  endif()
endif()

# grpcio's messages and stubs for the interop, health and reflection protos
find_program(TERN_GRPC_PYTHON_PLUGIN grpc_python_plugin)
find_program(TERN_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT TERN_GRPC_PYTHON_PLUGIN OR NOT TERN_SYSTEM_PYTHON)
  message(STATUS "tern: grpc_python_plugin or /usr/bin/python3 missing: the gRPC interop tests are not registered")
  return()
endif()
set(tern_py ${CMAKE_CURRENT_BINARY_DIR}/grpc_gen_py)
set(tern_py_protos grpc/testing/test.proto grpc/testing/messages.proto grpc/testing/empty.proto
    grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto)
set(tern_py_out)
foreach(p IN LISTS tern_py_protos)
  string(REGEX REPLACE "[.]proto$" "" stem ${p})
  list(APPEND tern_py_out ${tern_py}/${stem}_pb2.py ${tern_py}/${stem}_pb2_grpc.py)
endforeach()
add_custom_command(
  OUTPUT ${tern_py_out}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${tern_py}
  COMMAND ${TERN_PROTOC} --python_out=${tern_py} --grpc_python_out=${tern_py}
          --plugin=protoc-gen-grpc_python=${TERN_GRPC_PYTHON_PLUGIN} -I${TERN_GRPC_PROTO_DIR} ${tern_py_protos}
  WORKING_DIRECTORY ${TERN_GRPC_PROTO_DIR}
  COMMENT "protoc: grpcio stubs for the interop, health and reflection tests"
  VERBATIM)
add_custom_target(grpc_gen_py ALL DEPENDS ${tern_py_out})
foreach(mode h2c tls)
  add_test(NAME grpc_interop_${mode}
    COMMAND ${TERN_SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/grpc_gen/grpc_interop.py ${tern_py}
            $<TARGET_FILE:interop_server> $<TARGET_FILE:interop_client> ${mode})
  set_tests_properties(grpc_interop_${mode} PROPERTIES LABELS grpc TIMEOUT 300)
endforeach()
