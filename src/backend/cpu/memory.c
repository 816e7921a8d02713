/*
 * memory.c — the CPU backend's memory: the counted allocator, fills as loops and copies as
 * memcpy (host and device are the same memory here, so the three copies are one function).
 */
#include "cpu.h"

#include "../../core/core.h"

#include <string.h>

void *nb__cpu_alloc(size_t nbytes) { return nb__alloc(nbytes); }
void nb__cpu_free(void *p, size_t nbytes) { nb__dealloc(p, nbytes); }

void nb__cpu_fill(void *dst, const void *value, size_t elem_size, int64_t n) {
    bool zero = true;
    for (size_t i = 0; i < elem_size; i++) zero = zero && ((const char *)value)[i] == 0;
    if (zero) {
        memset(dst, 0, (size_t)n * elem_size);
        return;
    }
    if (elem_size == sizeof(float)) { /* float32 and int32: one 4-byte pattern */
        uint32_t v, *d = dst;
        memcpy(&v, value, sizeof v);
        for (int64_t i = 0; i < n; i++) d[i] = v;
        return;
    }
    for (int64_t i = 0; i < n; i++) memcpy((char *)dst + (size_t)i * elem_size, value, elem_size);
}

void nb__cpu_memcpy(void *dst, const void *src, size_t nbytes) {
    if (nbytes) memcpy(dst, src, nbytes);
}

void nb__cpu_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset) {
    nb__philox_uniform(out, n, seed, offset);
}
