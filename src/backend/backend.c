/*
 * backend.c — which backend serves each device.  The CPU device is served by the CPU backend,
 * or, with NB_BACKEND=guarded in the environment when the library first looks, by the guarded
 * test backend (the same kernels behind pointers the host cannot dereference), which is how
 * the test suite proves that no code above src/backend touches tensor memory.
 */
#include "backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const nb_backend *cpu_device = &nb__cpu_backend;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *name = getenv("NB_BACKEND");
    if (name && strcmp(name, "guarded") == 0) cpu_device = &nb__guarded_backend;
}

const nb_backend *nb__backend(nb_device device) {
    pthread_once(&choose_once, choose);
    return device == NB_CPU ? cpu_device : NULL;
}
