# Cross build for aarch64 with Debian's cross gcc; tests run under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# The loader and libc must come from one glibc build: with Debian's arm64
# multiarch libraries installed (libjansson-dev:arm64 pulls libc6:arm64),
# libc.so.6 resolves to /lib/aarch64-linux-gnu, so the loader must too
# (mixing it with the cross toolchain's hangs every program).
if(EXISTS /lib/ld-linux-aarch64.so.1)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
endif()
# Debian multiarch: libjansson-dev:arm64 and zlib1g-dev:arm64 (scripts/deps.sh cross).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ZLIB_INCLUDE_DIR /usr/include)
set(ZLIB_LIBRARY /usr/lib/aarch64-linux-gnu/libz.so)
