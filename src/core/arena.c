/*
 * arena.c — scopes.  Each nesting depth of each thread owns one arena: a chain of blocks with a
 * bump pointer.  nb_scope_end rewinds the arena of its depth but keeps the blocks, so the same
 * step run again reuses the same memory and calls malloc zero times.  Separate arenas per depth
 * (rather than one stack) let a result be copied into the enclosing scope while the inner one is
 * still open, and let a leaf's gradient be allocated in the leaf's own scope during backward.
 */
#include "core.h"

#include <string.h>

#define NB_BLOCK_MIN (1u << 20)

typedef struct nb_block {
    struct nb_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} nb_block;

#define NB_BLOCK_HEADER ((sizeof(nb_block) + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN)

struct nb_arena {
    nb_block *first, *cur;
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
    a->tensors = NULL;
}

static void arena_rewind(nb_arena *a) {
    for (nb_tensor *t = a->tensors; t; t = t->next_in_arena) nb__tensor_retire(t);
    a->tensors = NULL;
    for (nb_block *b = a->first; b; b = b->next) b->used = 0;
    a->cur = a->first;
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
