/*
 * reflection_internal.h - reading serialized FileDescriptorProtos
 * (reflection_desc.c) for server reflection (reflection.c).
 */
#ifndef TERN_GRPC_REFLECTION_INTERNAL_H
#define TERN_GRPC_REFLECTION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Does the file declare the fully qualified name sym ("pkg.Msg",
 * "pkg.Msg.Nested", "pkg.Msg.field", "pkg.Enum", "pkg.ENUM_VALUE",
 * "pkg.Service", "pkg.Service.Method", "pkg.extension")?  Malformed data
 * declares nothing it cannot read. */
bool tern__grpc_desc_declares(const uint8_t *data, size_t len, const char *sym);

/* Called for each extension of the type: non-zero stops the walk and is
 * returned. */
typedef int tern__grpc_ext_fn(int32_t number, void *arg);
/* Tell fn the field number of every extension the file declares for the
 * fully qualified type ("pkg.Msg", no leading dot).  0 or fn's non-zero. */
int tern__grpc_desc_extensions(const uint8_t *data, size_t len, const char *type,
                               tern__grpc_ext_fn *fn, void *arg);

#endif
