# tern_grpc_generate: gRPC code for a target from .proto files, in one line.
#
#   tern_grpc_generate(<target> <file.proto>... [IMPORT_DIRS <dir>...] [OUT_DIR <dir>])
#
# For each file, protoc-c makes its messages (<name>.pb-c.c/.h) and
# protoc-gen-tern-grpc its services (<name>.tern-grpc.c/.h: descriptors,
# the typed server struct and register function, client stubs, the
# serialized file descriptor for reflection).  The .c files join the
# target's sources and OUT_DIR its include path (PUBLIC), so the target
# writes #include "<name>.tern-grpc.h" and links tern (tern::tern).
#
# <name> is the file's path relative to the import directory that holds
# it, as protoc names it (IMPORT_DIRS /usr/share/grpc-proto with
# .../grpc/testing/test.proto gives grpc/testing/test.tern-grpc.h); with no
# IMPORT_DIRS each file's own folder is its import directory.  Files a
# .proto imports are found on IMPORT_DIRS (and protoc's own include folder
# for google/protobuf/*.proto); their messages are C only if they are
# listed too, as protoc-c generates only what it is given: list every
# imported file that is not already compiled into the program.
# Relative paths are from the current source folder.  OUT_DIR defaults to
# ${CMAKE_CURRENT_BINARY_DIR}/<target>.grpc, one per target, so two targets
# may generate the same file.
#
# Tools: TERN_PROTOC (protoc), TERN_PROTOC_C (protoc-c) and
# TERN_GRPC_PLUGIN (protoc-gen-tern-grpc: a path, or the name of a target
# that builds it, as in tern's own tree) are cache variables, found on the
# PATH (and in the installed package's bin/) unless given.  In a cross build
# the plugin must be a host program: give it as -DTERN_GRPC_PLUGIN=...
#
# Shipped with tern's CMake package: find_package(tern) makes this function
# available.

include_guard(GLOBAL)

find_program(TERN_PROTOC protoc)
find_program(TERN_PROTOC_C protoc-c)
if(NOT TERN_GRPC_PLUGIN)
  find_program(TERN_GRPC_PLUGIN protoc-gen-tern-grpc)
endif()

function(tern_grpc_generate target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUT_DIR" "IMPORT_DIRS")
  set(protos ${arg_UNPARSED_ARGUMENTS})
  if(NOT TARGET ${target})
    message(FATAL_ERROR "tern_grpc_generate: ${target} is not a target (add_executable/add_library first)")
  endif()
  if(NOT protos)
    message(FATAL_ERROR "tern_grpc_generate(${target}): no .proto files given")
  endif()
  if(NOT TERN_PROTOC OR NOT TERN_PROTOC_C)
    message(FATAL_ERROR "tern_grpc_generate: protoc and protoc-c are needed "
                        "(Debian: protobuf-compiler, protobuf-c-compiler)")
  endif()
  if(NOT TERN_GRPC_PLUGIN)
    message(FATAL_ERROR "tern_grpc_generate: protoc-gen-tern-grpc not found: set TERN_GRPC_PLUGIN "
                        "(a host build of it in a cross build)")
  endif()
  if(TARGET ${TERN_GRPC_PLUGIN})
    set(plugin $<TARGET_FILE:${TERN_GRPC_PLUGIN}>)
  else()
    set(plugin ${TERN_GRPC_PLUGIN})
  endif()

  set(out ${arg_OUT_DIR})
  if(NOT out)
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}.grpc)
  endif()
  get_filename_component(out ${out} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_BINARY_DIR})

  set(dirs)
  foreach(d IN LISTS arg_IMPORT_DIRS)
    get_filename_component(d ${d} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND dirs ${d})
  endforeach()

  set(abs_protos)
  set(outputs)
  set(sources)
  set(own_dirs)
  foreach(p IN LISTS protos)
    get_filename_component(abs ${p} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${abs})
      message(FATAL_ERROR "tern_grpc_generate(${target}): ${abs} does not exist")
    endif()
    set(rel)
    foreach(d IN LISTS dirs)
      file(RELATIVE_PATH r ${d} ${abs})
      if(NOT r MATCHES "^[.][.]/" AND NOT IS_ABSOLUTE "${r}")
        set(rel ${r})
        break()
      endif()
    endforeach()
    if(NOT rel)
      if(arg_IMPORT_DIRS)
        message(FATAL_ERROR "tern_grpc_generate(${target}): ${abs} is in none of IMPORT_DIRS (${dirs})")
      endif()
      get_filename_component(d ${abs} DIRECTORY)
      list(APPEND own_dirs ${d})
      get_filename_component(rel ${abs} NAME)
    endif()
    string(REGEX REPLACE "[.]proto$" "" stem ${rel})
    list(APPEND abs_protos ${abs})
    list(APPEND sources ${out}/${stem}.pb-c.c ${out}/${stem}.tern-grpc.c)
    list(APPEND outputs ${out}/${stem}.pb-c.c ${out}/${stem}.pb-c.h
                        ${out}/${stem}.tern-grpc.c ${out}/${stem}.tern-grpc.h)
  endforeach()
  list(APPEND dirs ${own_dirs})
  list(REMOVE_DUPLICATES dirs)
  set(iflags)
  foreach(d IN LISTS dirs)
    list(APPEND iflags -I${d})
  endforeach()

  # the plugin as a target (tern's tree) or a file: rebuilt or changed, the
  # code is made again
  set(deps ${abs_protos} ${TERN_GRPC_PLUGIN})
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
    COMMAND ${TERN_PROTOC_C} --c_out=${out} ${iflags} ${abs_protos}
    COMMAND ${TERN_PROTOC} --plugin=protoc-gen-tern-grpc=${plugin} --tern-grpc_out=${out}
            ${iflags} ${abs_protos}
    DEPENDS ${deps}
    COMMENT "protoc-c and protoc-gen-tern-grpc for ${target}: ${protos}"
    VERBATIM)
  target_sources(${target} PRIVATE ${sources})
  target_include_directories(${target} PUBLIC ${out})
endfunction()
