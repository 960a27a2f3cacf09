# gRPC code generation in tern's own tree (included from CMakeLists.txt once
# the layers' targets exist):
#  - protoc-gen-tern-grpc (cmd/), a host tool: built in a native build; a
#    cross build takes a host build of it as -DTERN_GRPC_PLUGIN=<path>, or
#    goes without what needs it (TERN_GRPC_CODEGEN OFF: the examples and
#    tests made from .proto files are not built);
#  - tern_grpc_generate (cmake/TernGrpc.cmake), also installed for users;
#  - the messages of the standard services the library serves, compiled by
#    protoc-c from Debian's grpc-proto at build time: server reflection
#    (grpc.reflection.v1 and v1alpha, src/grpc/reflection.c) in the grpc
#    layer and health (grpc.health.v1, src/kit/health/grpc_health.c) in the
#    kit, their globals renamed tern__grpc__* (cmake/tern_pbc_prefix.cmake),
#    and their .proto files' descriptors, for reflection to describe them.
#    v1alpha's messages are v1's field for field (the two files differ in
#    the package alone): one set of C types serves both.
include(GNUInstallDirs)
find_program(TERN_PROTOC protoc)
find_program(TERN_PROTOC_C protoc-c)
if(NOT TERN_PROTOC_C OR NOT TERN_PROTOC)
  message(FATAL_ERROR "tern: protoc and protoc-c are needed (Debian: protobuf-compiler, "
                      "protobuf-c-compiler; scripts/deps.sh installs them)")
endif()
# host data (.proto files), also in a cross build: not under the target root
find_path(TERN_GRPC_PROTO_DIR grpc/health/v1/health.proto PATHS /usr/share/grpc-proto NO_CMAKE_FIND_ROOT_PATH)
if(NOT TERN_GRPC_PROTO_DIR)
  message(FATAL_ERROR "tern: grpc/health/v1/health.proto not found (Debian: grpc-proto)")
endif()

# protoc's own .proto files (Debian: libprotobuf-dev, libprotoc-dev): the
# plugin is built from plugin.proto and descriptor.proto
find_path(TERN_PROTOBUF_PROTO_DIR google/protobuf/compiler/plugin.proto PATHS /usr/include /usr/local/include
          NO_CMAKE_FIND_ROOT_PATH)

if(NOT CMAKE_CROSSCOMPILING)
  add_subdirectory(cmd/protoc-gen-tern-grpc)
  if(NOT TERN_GRPC_PLUGIN)
    set(TERN_GRPC_PLUGIN protoc-gen-tern-grpc)
  endif()
endif()
if(TERN_GRPC_PLUGIN)
  set(TERN_GRPC_CODEGEN ON)
else()
  set(TERN_GRPC_CODEGEN OFF)
  message(STATUS "tern: cross build without TERN_GRPC_PLUGIN (a host protoc-gen-tern-grpc): "
                 "the gRPC examples and codegen tests are not built")
endif()
include(cmake/TernGrpc.cmake)

# tern_grpc_layer_protos(<layer> [MESSAGES <proto>...] [DESCRIPTORS <proto>...])
# (files relative to grpc-proto): protoc-c's messages for MESSAGES, renamed
# and compiled into tern_<layer>; for DESCRIPTORS, <stem>.desc.h holding
# the file's serialized FileDescriptorProto as a static array named after
# the file (grpc/health/v1/health.proto: grpc_health_v1_health_proto), for
# the layer's sources to include.
function(tern_grpc_layer_protos layer)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "MESSAGES;DESCRIPTORS")
  set(raw ${CMAKE_BINARY_DIR}/grpc-gen/raw-${layer})
  set(out ${CMAKE_BINARY_DIR}/grpc-gen/${layer})
  set(srcs)
  foreach(p IN LISTS arg_MESSAGES)
    string(REGEX REPLACE "[.]proto$" "" stem ${p})
    add_custom_command(
      OUTPUT ${out}/${stem}.pb-c.c ${out}/${stem}.pb-c.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${raw}
      COMMAND ${TERN_PROTOC_C} --c_out=${raw} -I${TERN_GRPC_PROTO_DIR} ${TERN_GRPC_PROTO_DIR}/${p}
      COMMAND ${CMAKE_COMMAND} -DIN=${raw}/${stem}.pb-c.c -DOUT=${out}/${stem}.pb-c.c
              -P ${PROJECT_SOURCE_DIR}/cmake/tern_pbc_prefix.cmake
      COMMAND ${CMAKE_COMMAND} -DIN=${raw}/${stem}.pb-c.h -DOUT=${out}/${stem}.pb-c.h
              -P ${PROJECT_SOURCE_DIR}/cmake/tern_pbc_prefix.cmake
      DEPENDS ${TERN_GRPC_PROTO_DIR}/${p} ${PROJECT_SOURCE_DIR}/cmake/tern_pbc_prefix.cmake
      COMMENT "protoc-c: ${p} for tern_${layer}"
      VERBATIM)
    list(APPEND srcs ${out}/${stem}.pb-c.c ${out}/${stem}.pb-c.h)
  endforeach()
  foreach(p IN LISTS arg_DESCRIPTORS)
    string(REGEX REPLACE "[.]proto$" "" stem ${p})
    string(MAKE_C_IDENTIFIER ${p} ident)
    add_custom_command(
      OUTPUT ${out}/${stem}.desc.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${raw}/${stem}
      COMMAND ${TERN_PROTOC} --descriptor_set_out=${raw}/${stem}.set.pb -I${TERN_GRPC_PROTO_DIR}
              ${TERN_GRPC_PROTO_DIR}/${p}
      COMMAND ${CMAKE_COMMAND} -DIN=${raw}/${stem}.set.pb -DOUT=${out}/${stem}.desc.h -DNAME=${ident}
              -P ${PROJECT_SOURCE_DIR}/cmake/tern_embed_desc.cmake
      DEPENDS ${TERN_GRPC_PROTO_DIR}/${p} ${PROJECT_SOURCE_DIR}/cmake/tern_embed_desc.cmake
      COMMENT "protoc: the descriptor of ${p} for tern_${layer}"
      VERBATIM)
    list(APPEND srcs ${out}/${stem}.desc.h)
  endforeach()
  if(NOT TARGET tern_${layer})
    return()
  endif()
  target_sources(tern_${layer} PRIVATE ${srcs})
  target_include_directories(tern_${layer} PRIVATE ${out})
endfunction()
tern_grpc_layer_protos(grpc MESSAGES grpc/reflection/v1/reflection.proto
                       DESCRIPTORS grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto)
tern_grpc_layer_protos(kit MESSAGES grpc/health/v1/health.proto DESCRIPTORS grpc/health/v1/health.proto)
