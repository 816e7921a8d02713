/*
 * autocast.h — what the ops see of autocast (nabla/amp.h): the thread's dtype, which matmul,
 * linear and conv record in their node (nb_op_args.amp), and the rounding of their operands,
 * results and gradients to it (through the backend's round_half).
 */
#ifndef NB_AUTOCAST_H
#define NB_AUTOCAST_H

#include "../core/core.h"

/* A new contiguous float32 tensor (the current home's) holding t rounded to amp (NB_BF16 or
 * NB_F16); NULL with the error set on failure. */
nb_tensor *nb__amp_rounded(nb_tensor *t, nb_dtype amp);
/* Rounds t (contiguous float32, made by the caller) to amp in place; t itself, NULL for NULL. */
nb_tensor *nb__amp_round(nb_tensor *t, nb_dtype amp);

#endif
