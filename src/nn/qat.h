/*
 * qat.h — what the QAT modules of quant.c (Linear) and qat.c (Conv2d, ConvBn2d, prepare)
 * share: the FakeQuantize options nb_qat_opts stands for, and adding one as a child.
 */
#ifndef NB_NN_QAT_H
#define NB_NN_QAT_H

#include "nabla/quant.h"
#include "module.h"

/* The weight's fake quantizer: weight_bits, signed, symmetric, per output channel (dim 0),
 * moving-average observer (torch's default_per_channel_weight_fake_quant). */
nb_fake_quantize_opts nb__qat_weight_opts(const nb_qat_opts *o, int64_t out_channels);
/* The output's: act_bits, unsigned, affine, per tensor (torch's default_fake_quant). */
nb_fake_quantize_opts nb__qat_act_opts(const nb_qat_opts *o);
/* A new FakeQuantize as m's child `name` (*child); false with the error prefixed by m's class
 * and the child's name. */
bool nb__qat_add_fake_quant(nb_module *m, const char *name, const nb_fake_quantize_opts *o,
                            nb_module **child);

#endif
