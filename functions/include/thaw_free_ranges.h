/* The memory scaling export of the Thaw wasi ABI (docs/abi.md "Memory scaling"):
 *
 *   thaw_free_ranges() -> i32: a pointer to [count, offset0, length0, offset1, length1, ...]
 *   (u32 each, at most 128 ranges): byte ranges of linear memory the allocator holds free now,
 *   which the guest promises not to read before writing them again. The host rounds each range
 *   inward to whole pages and discards them between invocations (they read as zero afterwards).
 *
 * This implementation is for wasi-libc's dlmalloc (HAVE_MMAP 0, MALLOC_ALIGNMENT 16, one
 * contiguous heap segment from __heap_base to the end of memory when nothing else grows memory).
 * It walks the heap's chunks from the first to the top chunk, using only the chunk headers
 * (head = size | PINUSE | CINUSE), and reports the inside of each free chunk (past its free-list
 * links) and of the top chunk. If the walk does not end exactly where dlmalloc puts the top
 * chunk's footer (a heap it does not understand), it reports nothing: releasing nothing is safe.
 * Include it in exactly one C file of a module. */
#ifndef THAW_FREE_RANGES_H
#define THAW_FREE_RANGES_H
#include <stdint.h>
#include <stdlib.h>

#define THAW_FREE_RANGES_MAX 128u

static uint32_t thaw_free_ranges_list[1 + 2 * THAW_FREE_RANGES_MAX];
extern unsigned char __heap_base;

/* dlmalloc on wasm32: 4-byte size_t, 16-byte alignment; the chunk after top has head == TOP_FOOT_SIZE. */
#define THAW_DL_ALIGN 16u
#define THAW_DL_TOP_FOOT 56u
/* Bytes of a free chunk dlmalloc itself uses: prev_foot, head, fd, bk, and for tree chunks child[2], parent, index. */
#define THAW_DL_FREE_HEADER 32u
#define THAW_DL_PINUSE 1u
#define THAW_DL_FLAGS 7u

static void thaw_free_ranges_add(uint32_t *n, uint32_t start, uint32_t end) {
  if (end <= start + 4096u || *n >= THAW_FREE_RANGES_MAX) return;
  thaw_free_ranges_list[1 + 2 * *n] = start;
  thaw_free_ranges_list[2 + 2 * *n] = end - start;
  (*n)++;
}

THAW_EXPORT("thaw_free_ranges") uint32_t *thaw_free_ranges(void) {
  free(malloc(1)); /* dlmalloc sets its heap up on first use */
  uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536u;
  uint32_t base = (uint32_t)(uintptr_t)&__heap_base;
  uint32_t p = base + ((THAW_DL_ALIGN - ((base + 8u) & (THAW_DL_ALIGN - 1u))) & (THAW_DL_ALIGN - 1u));
  uint32_t n = 0, steps = 0;
  int ok = 0;
  thaw_free_ranges_list[0] = 0;
  while (p + 8u <= end && steps++ < (1u << 24)) {
    uint32_t size = *(volatile uint32_t *)(uintptr_t)(p + 4u) & ~THAW_DL_FLAGS;
    if (size < 16u || size % THAW_DL_ALIGN != 0 || p + size > end) break;
    uint32_t next = p + size;
    if (next == end - THAW_DL_TOP_FOOT) {
      /* p is the top chunk if the footer after it has the head dlmalloc's init_top writes. */
      if (*(volatile uint32_t *)(uintptr_t)(next + 4u) != THAW_DL_TOP_FOOT) break;
      /* Keep the last slot for the top chunk, the largest range in practice. */
      if (n == THAW_FREE_RANGES_MAX) n--;
      thaw_free_ranges_add(&n, p + 8u, next);
      ok = 1;
      break;
    }
    uint32_t next_head = *(volatile uint32_t *)(uintptr_t)(next + 4u);
    if (!(next_head & THAW_DL_PINUSE) && n < THAW_FREE_RANGES_MAX - 1u) thaw_free_ranges_add(&n, p + THAW_DL_FREE_HEADER, next);
    p = next;
  }
  thaw_free_ranges_list[0] = ok ? n : 0;
  return thaw_free_ranges_list;
}

#endif
