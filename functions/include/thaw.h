/* Host imports of the Thaw wasi ABI (docs/abi.md): module "thaw". Shared by every C function
 * (the functions/NAME-c examples and the functions/suite/NAME ones): the build passes -I functions/include. */
#ifndef THAW_H
#define THAW_H
#include <stdint.h>

#define THAW_IMPORT(name) __attribute__((import_module("thaw"), import_name(name)))
#define THAW_EXPORT(name) __attribute__((export_name(name)))

/* Length of the request in bytes. */
THAW_IMPORT("input_len") int32_t thaw_input_len(void);
/* Copies up to len request bytes to ptr; returns the number copied. */
THAW_IMPORT("input_read") int32_t thaw_input_read(void *ptr, int32_t len);
/* Appends len bytes at ptr to the response. */
THAW_IMPORT("output_write") void thaw_output_write(const void *ptr, int32_t len);
/* Size of object `key`, or -1 when it does not exist. */
THAW_IMPORT("object_len") int32_t thaw_object_len(const char *key, int32_t key_len);
/* Copies up to dst_len bytes of object `key` to dst; returns bytes copied, -1 when missing. */
THAW_IMPORT("object_read") int32_t thaw_object_read(const char *key, int32_t key_len, void *dst, int32_t dst_len);
/* Stores val_len bytes at val as object `key`; returns 0 on success. */
THAW_IMPORT("object_write") int32_t thaw_object_write(const char *key, int32_t key_len, const void *val, int32_t val_len);

#endif
