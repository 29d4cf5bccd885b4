# Builds the native addon (build/Release/thaw_native.node): plain C11 against node_api.h only,
# linked with the system liblz4 and libzstd (Debian: liblz4-dev, libzstd-dev). crc32 comes from
# the zlib inside the Node binary (Node's headers ship zlib.h), the same code as node:zlib's crc32.
{
  "targets": [
    {
      "target_name": "thaw_native",
      "sources": ["binding.c", "thaw_mmap.c", "thaw_uffd.c", "thaw_codec.c", "thaw_fill.c", "thaw_jail.c", "thaw_stages.c", "thaw_offload.c", "binding_offload.c", "thaw_fc.c", "thaw_scaling.c", "thaw_sealed.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror=implicit-function-declaration"],
      "libraries": ["-llz4", "-lzstd", "-lpthread"]
    },
    {
      "target_name": "thaw-fc-testvmm",
      "type": "executable",
      "sources": ["thaw_fc_vmm.c"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror=implicit-function-declaration"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "thaw-jailer",
      "type": "executable",
      "sources": ["thaw_jailer.c"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror=implicit-function-declaration"]
    }
  ]
}
