# cmake -DIN=<protoc-c output> -DOUT=<file> -P tern_pbc_prefix.cmake
#
# The library compiles protoc-c's code for the standard services it serves
# (grpc.reflection.*, grpc.health.v1).  protoc-c names its globals after
# the package (grpc__health__v1__health_check_request__descriptor, ...):
# linked into libtern.a as they are, they would break the rule that the
# library defines only tern_ names (scripts/check-exports.sh), and collide
# with a program that compiles the same .proto for its own use.  This
# renames every such global grpc__* to tern__grpc__* (the C types,
# Grpc__*, are not symbols and stay).
file(READ ${IN} text)
string(REGEX REPLACE "([^A-Za-z0-9_])grpc__" "\\1tern__grpc__" text "${text}")
file(WRITE ${OUT} "${text}")
