/*
 * tern/grpc_reflection.h - gRPC server reflection: the services a server
 * carries, and the .proto files that describe them, for clients that have
 * no .proto of their own (grpcurl, grpcio's reflection client, Postman).
 *
 *     tern_grpc_server_new(NULL, &s);
 *     helloworld_greeter_register(s, &impl, NULL);
 *     tern_grpc_server_enable_reflection(s);
 *
 *     $ grpcurl -plaintext 127.0.0.1:50051 list
 *     grpc.reflection.v1.ServerReflection
 *     grpc.reflection.v1alpha.ServerReflection
 *     helloworld.Greeter
 *
 * Serves grpc.reflection.v1.ServerReflection and its older twin
 * grpc.reflection.v1alpha.ServerReflection (what most clients still ask
 * for) from the serialized FileDescriptorProto each generated service
 * carries (tern_grpc_service_desc.file and its deps): list_services,
 * file_by_filename, file_containing_symbol (messages, nested messages,
 * fields, enums and their values, services, methods, extensions),
 * file_containing_extension and all_extension_numbers_of_type.  A file is
 * answered with every file it imports.  What cannot be found is answered
 * NOT_FOUND on the stream, which stays open.
 *
 * The answers describe the services registered when a reflection call
 * starts; services are registered before serving, so that is all of them.
 */
#ifndef TERN_GRPC_REFLECTION_H
#define TERN_GRPC_REFLECTION_H

#include "tern/grpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Register the two reflection services on s (before serving, as any
 * service).  0, -EINVAL (s NULL), or as tern_grpc_server_add_service
 * (-EEXIST when already enabled, -EBUSY once serving). */
int tern_grpc_server_enable_reflection(tern_grpc_server *s);

#ifdef __cplusplus
}
#endif
#endif
