# Per-layer include views, made at configure time in the build tree.
#
# For each layer L of TERN_LAYERS (lowest first), ${TERN_LAYER_VIEWS}/L holds
#   include/tern/<h>   the public headers of L and of the layers below it
#   src/L              L's own folder, all of it
#   src/base           (for every layer above base) base, all of it: base is
#                      a toolbox of independent modules, each header its face
#   src/M/export.h     for each other layer M below L, M's one exported
#                      internal header, when it has one
# as symbolic links to the sources, so that editing a file needs nothing
# here.  A layer compiled with only its view cannot #include anything
# above it: the file is simply not there.  Adding a public header or an
# export.h re-runs this (CONFIGURE_DEPENDS); a public header that no layer
# claims (TERN_PUBLIC_<layer> globs) is an error.
#
# tern_layer_view(<target> <layer>) gives a target (a test or fuzzer that
# deliberately reaches into a layer's internals) that layer's view.

set(TERN_LAYER_VIEWS ${CMAKE_BINARY_DIR}/layers)
file(REMOVE_RECURSE ${TERN_LAYER_VIEWS})

file(GLOB tern_public_headers CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/include/tern/*.h)
file(GLOB tern_exports CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*/export.h)

# Which layer owns each public header.
set(tern_claimed)
foreach(layer IN LISTS TERN_LAYERS)
  set(TERN_PUBLIC_HEADERS_${layer})
  foreach(pattern IN LISTS TERN_PUBLIC_${layer})
    file(GLOB hs ${CMAKE_CURRENT_SOURCE_DIR}/include/tern/${pattern})
    foreach(h IN LISTS hs)
      if(h IN_LIST tern_claimed)
        message(FATAL_ERROR "tern: ${h} is claimed by two layers")
      endif()
      list(APPEND tern_claimed ${h})
      list(APPEND TERN_PUBLIC_HEADERS_${layer} ${h})
    endforeach()
  endforeach()
endforeach()
foreach(h IN LISTS tern_public_headers)
  if(NOT h IN_LIST tern_claimed)
    message(FATAL_ERROR "tern: ${h} belongs to no layer: add it to a TERN_PUBLIC_<layer> list in CMakeLists.txt")
  endif()
endforeach()

set(tern_below)
foreach(layer IN LISTS TERN_LAYERS)
  set(view ${TERN_LAYER_VIEWS}/${layer})
  file(MAKE_DIRECTORY ${view}/include/tern ${view}/src)
  foreach(l IN LISTS tern_below ITEMS ${layer})
    foreach(h IN LISTS TERN_PUBLIC_HEADERS_${l})
      get_filename_component(n ${h} NAME)
      file(CREATE_LINK ${h} ${view}/include/tern/${n} SYMBOLIC)
    endforeach()
  endforeach()
  file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/src/${layer} ${view}/src/${layer} SYMBOLIC)
  foreach(l IN LISTS tern_below)
    if(l STREQUAL "base")
      file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/src/base ${view}/src/base SYMBOLIC)
    elseif(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/src/${l}/export.h)
      file(MAKE_DIRECTORY ${view}/src/${l})
      file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/src/${l}/export.h ${view}/src/${l}/export.h SYMBOLIC)
    endif()
  endforeach()
  list(APPEND tern_below ${layer})
endforeach()

function(tern_layer_view target layer)
  target_include_directories(${target} PRIVATE
    ${TERN_LAYER_VIEWS}/${layer}/include ${TERN_LAYER_VIEWS}/${layer}/src)
endfunction()
