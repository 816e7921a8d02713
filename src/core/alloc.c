/*
 * alloc.c — the counted allocator.  Every block libnabla takes from the system passes through
 * nb__alloc / nb__dealloc, so tests can assert "zero mallocs per training step" and leaks show
 * up in nb_alloc_stats before a sanitizer sees them.  Counters are atomic: a data loader's
 * prefetch thread allocates too.
 */
#include "core.h"

#include <stdatomic.h>
#include <string.h>
#include <stdlib.h>

static atomic_uint_fast64_t n_mallocs, n_frees;
static atomic_size_t live_bytes, peak_bytes;

void *nb__alloc(size_t n) {
    void *p = NULL;
    size_t rounded = (n + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN;
    if (rounded == 0) rounded = NB_ALIGN;
    if (rounded < n || posix_memalign(&p, NB_ALIGN, rounded) != 0)
        return nb__fail(NB_ERR_MEMORY, "out of memory allocating %zu bytes", n);
    atomic_fetch_add(&n_mallocs, 1);
    size_t live = atomic_fetch_add(&live_bytes, n) + n;
    size_t peak = atomic_load(&peak_bytes);
    while (live > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, live)) {
    }
    return p;
}

void nb__dealloc(void *p, size_t n) {
    if (!p) return;
    atomic_fetch_add(&n_frees, 1);
    atomic_fetch_sub(&live_bytes, n);
    free(p);
}

nb_alloc_stats nb_alloc_stats_get(void) {
    return (nb_alloc_stats){
        .mallocs = atomic_load(&n_mallocs),
        .frees = atomic_load(&n_frees),
        .bytes_live = atomic_load(&live_bytes),
        .bytes_peak = atomic_load(&peak_bytes),
    };
}

char *nb__strcat2(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = nb__alloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

void nb__strfree(char *s) {
    if (s) nb__dealloc(s, strlen(s) + 1);
}
