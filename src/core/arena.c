/*
 * arena.c — scopes.  Each nesting depth of each thread owns one arena: a chain of blocks with a
 * bump pointer.  nb_scope_end rewinds the arena of its depth but keeps the blocks, so the same
 * step run again reuses the same memory and calls malloc zero times.  Separate arenas per depth
 * (rather than one stack) let a result be copied into the enclosing scope while the inner one is
 * still open, and let a leaf's gradient be allocated in the leaf's own scope during backward.
 *
 * Tensor data is the backend's memory, which the host may not touch: each arena keeps a second
 * chain of blocks for it, taken from the CPU device's backend, with their bookkeeping on the host.
 */
#include "core.h"

#include "../backend/backend.h"

#include <string.h>

#define NB_BLOCK_MIN (1u << 20)

typedef struct nb_block {
    struct nb_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} nb_block;

#define NB_BLOCK_HEADER ((sizeof(nb_block) + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN)

/* A block of device memory; the record itself is host memory. */
typedef struct nb_data_block {
    struct nb_data_block *next;
    char *mem;
    size_t size, used;
    const nb_backend *backend;
} nb_data_block;

struct nb_arena {
    nb_block *first, *cur;
    nb_data_block *data_first, *data_cur;
    nb_tensor *tensors; /* made in this scope, newest first */
    size_t next_block;  /* size of the next block to add: doubles as the arena grows */
};

static _Thread_local nb_arena arenas[NB_MAX_SCOPES];
static _Thread_local int depth;

nb_arena *nb__current_arena(void) { return depth > 0 ? &arenas[depth - 1] : NULL; }
int nb_scope_depth(void) { return depth; }

void nb_scope_begin(void) {
    if (depth == NB_MAX_SCOPES) {
        /* Refusing silently would unbalance the caller's begin/end pairs; count it instead so
         * the matching nb_scope_end reports the error. */
        nb__fail(NB_ERR_SCOPE, "scope_begin: more than %d nested scopes", NB_MAX_SCOPES);
        depth++;
        return;
    }
    nb_arena *a = &arenas[depth++];
    a->cur = a->first;
    a->data_cur = a->data_first;
    a->tensors = NULL;
}

static void arena_rewind(nb_arena *a) {
    for (nb_tensor *t = a->tensors; t; t = t->next_in_arena) nb__tensor_retire(t);
    a->tensors = NULL;
    for (nb_block *b = a->first; b; b = b->next) b->used = 0;
    for (nb_data_block *b = a->data_first; b; b = b->next) b->used = 0;
    a->cur = a->first;
    a->data_cur = a->data_first;
}

nb_status nb_scope_end(void) {
    if (depth == 0) return nb__fail_status(NB_ERR_SCOPE, "scope_end: no scope is open");
    if (depth > NB_MAX_SCOPES) {
        depth--;
        return nb__fail_status(NB_ERR_SCOPE, "scope_end: more than %d nested scopes", NB_MAX_SCOPES);
    }
    arena_rewind(&arenas[--depth]);
    return NB_OK;
}

void *nb__arena_alloc(nb_arena *a, size_t n) {
    n = (n + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN;
    while (a->cur && a->cur->size - a->cur->used < n) a->cur = a->cur->next;
    if (!a->cur) {
        size_t size = a->next_block > NB_BLOCK_MIN ? a->next_block : NB_BLOCK_MIN;
        if (size < n) size = n;
        nb_block *b = nb__alloc(NB_BLOCK_HEADER + size);
        if (!b) return NULL;
        *b = (nb_block){.next = NULL, .size = size, .used = 0};
        nb_block **tail = &a->first;
        while (*tail) tail = &(*tail)->next;
        *tail = b;
        a->cur = b;
        a->next_block = size * 2;
    }
    void *p = (char *)a->cur + NB_BLOCK_HEADER + a->cur->used;
    a->cur->used += n;
    return p;
}

/* Like nb__arena_alloc, on the arena's chain of device blocks: their sizes follow the host
 * chain's rule (doubling, at least NB_BLOCK_MIN). */
static void *arena_alloc_data(nb_arena *a, const nb_backend *be, size_t n) {
    n = (n + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN;
    while (a->data_cur && a->data_cur->size - a->data_cur->used < n) a->data_cur = a->data_cur->next;
    if (!a->data_cur) {
        nb_data_block **tail = &a->data_first;
        size_t size = NB_BLOCK_MIN;
        for (; *tail; tail = &(*tail)->next) size = (*tail)->size * 2;
        if (size < n) size = n;
        nb_data_block *b = nb__alloc(sizeof *b);
        char *mem = b ? be->alloc(size) : NULL;
        if (!mem) {
            nb__dealloc(b, sizeof *b);
            return NULL;
        }
        *b = (nb_data_block){.next = NULL, .mem = mem, .size = size, .used = 0, .backend = be};
        *tail = b;
        a->data_cur = b;
    }
    void *p = a->data_cur->mem + a->data_cur->used;
    a->data_cur->used += n;
    return p;
}

void *nb__home_alloc_data(nb_arena *home, const nb_backend *be, size_t n) {
    return home ? arena_alloc_data(home, be, n) : be->alloc(n);
}

void nb__home_free_data(nb_arena *home, const nb_backend *be, void *p, size_t n) {
    if (!home && p) be->free(p, n);
}

void nb__arena_track(nb_arena *a, nb_tensor *t) {
    t->next_in_arena = a->tensors;
    a->tensors = t;
}

void *nb__home_alloc(nb_arena *home, size_t n) {
    return home ? nb__arena_alloc(home, n) : nb__alloc(n);
}

void nb__home_free(nb_arena *home, void *p, size_t n) {
    if (!home) nb__dealloc(p, n);
}

void nb_release_memory(void) {
    for (int i = depth; i < NB_MAX_SCOPES; i++) {
        nb_block *b = arenas[i].first;
        while (b) {
            nb_block *next = b->next;
            nb__dealloc(b, NB_BLOCK_HEADER + b->size);
            b = next;
        }
        for (nb_data_block *d = arenas[i].data_first, *next; d; d = next) {
            next = d->next;
            d->backend->free(d->mem, d->size);
            nb__dealloc(d, sizeof *d);
        }
        memset(&arenas[i], 0, sizeof arenas[i]);
    }
}

nb_tensor *nb_scope_end_keep(nb_tensor *t) {
    if (depth == 0) return nb__fail(NB_ERR_SCOPE, "scope_end_keep: no scope is open");
    nb_tensor *kept = NULL;
    if (!nb__alive(t))
        nb__fail_input("scope_end_keep", t);
    else /* copy one level out while the inner scope, and t, still exist */
        kept = nb__clone_in(depth > 1 ? &arenas[depth - 2] : NULL, t);
    nb_scope_end();
    return kept;
}
