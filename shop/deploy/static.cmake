# static.cmake - shop_static_relink(PREFIX...): make the pkg-config
# imported targets (PkgConfig::<PREFIX>, found by the top-level
# CMakeLists) and ZLIB::ZLIB link archives, for SHOP_STATIC.
#
# pkg_check_modules resolved each library to its shared object; a -static
# link refuses those, and an archive needs the libraries its own code uses
# (libssl.a: libcrypto, libdl, pthread), which pkg-config lists only under
# --static (<PREFIX>_STATIC_LIBRARIES).  glibc's own (dl, pthread, m, rt)
# stay plain -l names: -static picks their archives.

function(shop_static_archive name dirs out)
  if(name MATCHES "^(c|dl|pthread|m|rt)$")
    set(${out} ${name} PARENT_SCOPE)
    return()
  endif()
  # Debian's multiarch folder first: a cross build's find root
  # (/usr/aarch64-linux-gnu) holds only glibc, not Debian's :arm64 libraries
  find_library(SHOP_STATIC_LIB_${name} NAMES lib${name}.a NO_CACHE NO_CMAKE_FIND_ROOT_PATH
               PATHS ${dirs} /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE} NO_DEFAULT_PATH)
  if(NOT SHOP_STATIC_LIB_${name})
    message(FATAL_ERROR "SHOP_STATIC: no static archive lib${name}.a (install its -dev package)")
  endif()
  set(${out} ${SHOP_STATIC_LIB_${name}} PARENT_SCOPE)
endfunction()

function(shop_static_relink)
  foreach(dep IN LISTS ARGN)
    if(NOT TARGET PkgConfig::${dep})
      continue()
    endif()
    set(libs)
    foreach(name IN LISTS ${dep}_STATIC_LIBRARIES)
      shop_static_archive(${name} "${${dep}_STATIC_LIBRARY_DIRS}" lib)
      list(APPEND libs ${lib})
    endforeach()
    # -pthread and the like, which are not -l names
    list(APPEND libs ${${dep}_STATIC_LDFLAGS_OTHER})
    set_property(TARGET PkgConfig::${dep} PROPERTY INTERFACE_LINK_LIBRARIES "${libs}")
    message(STATUS "shop: static ${dep}: ${libs}")
  endforeach()
  shop_static_archive(z "" zlib)
  # FindZLIB may have set a location per configuration too
  foreach(cfg IN ITEMS "" _RELEASE _DEBUG)
    set_property(TARGET ZLIB::ZLIB PROPERTY IMPORTED_LOCATION${cfg} ${zlib})
  endforeach()
endfunction()
