/*
 * quant_internal.h — what post-training quantization (quantized.c) reads of the QAT modules
 * (quant.c) to convert a QAT model: a QAT Linear's parameters and the frozen qparams of its
 * two FakeQuantize children.
 */
#ifndef NB_NN_QUANT_INTERNAL_H
#define NB_NN_QUANT_INTERNAL_H

#include "module.h"

typedef struct {
    nb_tensor *weight, *bias;                  /* float32 [out, in], [out] or NULL */
    nb_tensor *weight_scale, *weight_zero_point; /* float32 [out]: weight_fake_quant's */
    int weight_qmin, weight_qmax;              /* its integer range */
    nb_tensor *scale, *zero_point;             /* float32 [1]: activation_post_process's */
} nb__qat_parts;

/* The parts of m when it is a QAT Linear (nb_qat_linear_new); false for any other module. */
bool nb__qat_linear_parts(const nb_module *m, nb__qat_parts *parts);

#endif
