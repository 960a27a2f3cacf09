# Installing tern: libtern.a, the public headers, tern.pc (pkg-config) and a
# CMake package (find_package(tern) gives tern::tern).  Included last from
# the top-level CMakeLists.txt, once the tern target exists.
#
# `cmake --install build --prefix DIR` works: tern.pc is written at install
# time for the prefix actually used, and the CMake package finds its files
# relative to itself.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(TERN_INSTALL_LTO
  "Keep gcc's LTO bytecode in the installed libtern.a (programs linked with -flto then optimize across tern, at the cost of slower links)"
  OFF)

install(TARGETS tern ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/tern DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The build's objects are fat LTO objects (see TERN_LTO): machine code
# beside gcc's bytecode.  gcc's linker plugin claims an archive member that
# carries bytecode even when the program is not linked with -flto, and runs
# a link-time compilation of every tern file the program pulls in: seconds
# per link, and tern's compile-time warnings shown again at the user's link.
# The installed copy keeps only the machine code unless TERN_INSTALL_LTO.
if(TERN_LTO_ACTIVE AND NOT TERN_INSTALL_LTO)
  if(NOT CMAKE_OBJCOPY)
    message(FATAL_ERROR "tern: objcopy not found; it strips the LTO bytecode from the installed "
                        "libtern.a (or configure with -DTERN_INSTALL_LTO=ON, or -DTERN_LTO=OFF)")
  endif()
  install(CODE "
    set(tern_lib \"${CMAKE_INSTALL_LIBDIR}/$<TARGET_FILE_NAME:tern>\")
    if(NOT IS_ABSOLUTE \"\${tern_lib}\")
      set(tern_lib \"\${CMAKE_INSTALL_PREFIX}/\${tern_lib}\")
    endif()
    set(tern_lib \"\$ENV{DESTDIR}\${tern_lib}\")
    message(STATUS \"Stripping LTO bytecode: \${tern_lib}\")
    execute_process(COMMAND \"${CMAKE_OBJCOPY}\" -R \".gnu.lto_*\" -R \".gnu.debuglto_*\" \"\${tern_lib}\"
                    RESULT_VARIABLE tern_rc)
    if(NOT tern_rc EQUAL 0)
      message(FATAL_ERROR \"objcopy failed (\${tern_rc}) on \${tern_lib}\")
    endif()
  ")
endif()

# tern.pc for the prefix given at install time (cmake --install --prefix
# overrides the one configured).
set(tern_pc_in ${CMAKE_CURRENT_SOURCE_DIR}/tern.pc.in)
set(tern_pc_tmp ${CMAKE_CURRENT_BINARY_DIR}/tern.pc)
install(CODE "
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  set(TERN_PC_REQUIRES_DATA \"${TERN_PC_REQUIRES_DATA}\")
  set(TERN_PC_REQUIRES_PG \"${TERN_PC_REQUIRES_PG}\")
  configure_file(\"${tern_pc_in}\" \"${tern_pc_tmp}\" @ONLY)
")
install(FILES ${tern_pc_tmp} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The CMake package: a hand-written config that describes the installed
# archive, so that it does not depend on how the build splits the library
# into targets.
set(TERN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tern)
set(TERN_LIB_FILE ${CMAKE_STATIC_LIBRARY_PREFIX}tern${CMAKE_STATIC_LIBRARY_SUFFIX})
configure_package_config_file(cmake/ternConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ternConfig.cmake
  INSTALL_DESTINATION ${TERN_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ternConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ternConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/ternConfigVersion.cmake
        DESTINATION ${TERN_CMAKE_DIR})
# tern_grpc_generate() for the package's users (the plugin it runs,
# protoc-gen-tern-grpc, installs into bin/ from cmd/protoc-gen-tern-grpc/)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/cmake/TernGrpc.cmake DESTINATION ${TERN_CMAKE_DIR})
