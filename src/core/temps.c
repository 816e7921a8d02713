/* temps.c — the references a composite holds on what it makes (see nb__temps in core.h). */
#include "core.h"

#include <string.h>

#define FIRST ((int)(sizeof ((nb__temps *)0)->first / sizeof(nb_tensor *)))

static nb_tensor **slot(nb__temps *temps, int i) {
    return i < FIRST ? &temps->first[i] : &temps->more[i - FIRST];
}

nb_tensor *nb__tmp(nb__temps *temps, nb_tensor *t) {
    if (!t || t->arena) return t; /* a scope's tensors are the scope's to release */
    if (temps->n == FIRST + temps->cap) {
        int cap = temps->cap ? temps->cap * 2 : FIRST;
        nb_tensor **more = nb__alloc(sizeof *more * (size_t)cap);
        if (!more) {
            nb__release(t);
            return NULL;
        }
        if (temps->more) {
            memcpy(more, temps->more, sizeof *more * (size_t)temps->cap);
            nb__dealloc(temps->more, sizeof *more * (size_t)temps->cap);
        }
        temps->more = more;
        temps->cap = cap;
    }
    *slot(temps, temps->n++) = t;
    return t;
}

nb_tensor *nb__temps_end(nb__temps *temps, nb_tensor *result) {
    bool handed_out = false;
    for (int i = 0; i < temps->n; i++) {
        nb_tensor *t = *slot(temps, i);
        if (t == result && !handed_out) handed_out = true;
        else nb__release(t);
    }
    if (result && !handed_out) nb__retain(result);
    if (temps->more) nb__dealloc(temps->more, sizeof *temps->more * (size_t)temps->cap);
    *temps = (nb__temps){0};
    return result;
}
