/*
 * io.h — internal entry points of src/io, for the tests and the fuzzer.  Users see nabla/io.h.
 */
#ifndef NB_IO_INTERNAL_H
#define NB_IO_INTERNAL_H

#include "../core/core.h"

/* nb_safetensors_open on bytes already in memory (copied); label stands for the file name in
 * error messages.  Same validation, same errors. */
nb_safetensors *nb__safetensors_from_memory(const char *label, const void *data, size_t size);

#endif
