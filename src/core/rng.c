/*
 * rng.c — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
 * A counter-based generator: the i-th number of a draw is a pure function of (seed, offset + i),
 * so any split of the work over threads yields the same numbers.  Each 128-bit counter gives
 * four 32-bit outputs; element i uses word i % 4 of counter (offset + i) / 4 ... with offsets
 * kept multiples of 4 so draws never share a counter.
 */
#include "core.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * ctr[0], p1 = (uint64_t)PHILOX_M1 * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0, c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[1] = (uint32_t)p1;
        ctr[3] = (uint32_t)p0;
        ctr[0] = c0;
        ctr[2] = c2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

typedef struct {
    float *out;
    int64_t n;
    uint64_t seed, offset;
} uniform_job;

/* Blocks [lo, hi) of four numbers each. */
static void uniform_blocks(void *arg, int64_t lo, int64_t hi) {
    const uniform_job *u = arg;
    for (int64_t blk = lo; blk < hi; blk++) {
        uint64_t c = u->offset / 4 + (uint64_t)blk;
        uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
        philox(ctr, (uint32_t)u->seed, (uint32_t)(u->seed >> 32));
        for (int j = 0; j < 4 && blk * 4 + j < u->n; j++) /* 24 high bits -> [0, 1) exactly */
            u->out[blk * 4 + j] = (float)(ctr[j] >> 8) * (1.0f / 16777216.0f);
    }
}

void nb__philox_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset) {
    uniform_job u = {out, n, seed, offset};
    nb__parallel_for(n > (1 << 16), (n + 3) / 4, uniform_blocks, &u);
}

static _Thread_local nb_generator gen = {.seed = 0, .offset = 0};

void nb_manual_seed(uint64_t seed) { gen = (nb_generator){.seed = seed, .offset = 0}; }
nb_generator nb_rng_get_state(void) { return gen; }
void nb_rng_set_state(nb_generator g) { gen = g; }

uint64_t nb__rng_reserve(uint64_t n, uint64_t *seed) {
    uint64_t first = gen.offset;
    gen.offset += (n + 3) / 4 * 4;
    *seed = gen.seed;
    return first;
}
