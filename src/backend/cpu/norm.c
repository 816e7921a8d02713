/*
 * norm.c — the CPU backend's BatchNorm kernels (nn/norm.c): the running statistics' update and
 * the fold of a BatchNorm into the layer before it.
 */
#include "cpu.h"

#include <math.h>

void nb__cpu_batchnorm_running(float *rm, float *rv, const float *mean, const float *var, int64_t c,
                               float mom, float unbias) {
    for (int64_t i = 0; i < c; i++) {
        rm[i] = (1.0f - mom) * rm[i] + mom * mean[i];
        rv[i] = (1.0f - mom) * rv[i] + mom * var[i] * unbias;
    }
}

void nb__cpu_batchnorm_fold(float *fw, float *fb, const nb__batchnorm_fold_args *a) {
    for (int64_t o = 0; o < a->out; o++) {
        float s = (a->g ? a->g[o] : 1.0f) / sqrtf(a->rv[o] + a->eps);
        for (int64_t i = 0; i < a->row; i++) fw[o * a->row + i] = s * a->w[o * a->row + i];
        fb[o] = s * ((a->b ? a->b[o] : 0.0f) - a->rm[o]) + (a->beta ? a->beta[o] : 0.0f);
    }
}
