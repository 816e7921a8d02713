/*
 * test_tensor.c — the core tensor layer: creation, random numbers (distribution, determinism
 * across thread counts, the documented counter offsets, state replay), views and the storage
 * they share, broadcasting, element access, dtype conversion (checked bit for bit against
 * IEEE half and bfloat16 encodings) and printing (checked against torch's repr).
 *
 * The dtype tests include core/core.h to read the raw 16-bit storage: the public API only
 * shows converted values, and -0, NaN payloads and rounding ties are about the bits.
 */
#include "check.h"
#include "backend/backend.h"
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- creation */

static void constant_fills_have_shape_and_values(void) {
    nb_scope_begin();
    nb_tensor *z = nb_zeros(NB_SHAPE(2, 3)), *o = nb_ones(NB_SHAPE(2, 3));
    nb_tensor *f = nb_full(NB_SHAPE(4), -7.5f);
    CHECK_EQ_INT(nb_ndim(z), 2);
    CHECK_EQ_INT(nb_shape(z)[0], 2);
    CHECK_EQ_INT(nb_shape(z)[1], 3);
    CHECK_EQ_INT(nb_numel(z), 6);
    CHECK_EQ_INT(nb_dtype_of(z), NB_F32);
    CHECK_EQ_INT(nb_device_of(z), NB_CPU);
    CHECK(nb_is_contiguous(z));
    CHECK_EQ_INT(nb_strides(z)[0], 3);
    CHECK_EQ_INT(nb_strides(z)[1], 1);
    CHECK_TENSOR("zeros", z, ((double[]){0, 0, 0, 0, 0, 0}), 6, 0, 0);
    CHECK_TENSOR("ones", o, ((double[]){1, 1, 1, 1, 1, 1}), 6, 0, 0);
    CHECK_TENSOR("full", f, ((double[]){-7.5, -7.5, -7.5, -7.5}), 4, 0, 0);
    nb_tensor *s = nb_full(0, NULL, 2.5f);
    CHECK_EQ_INT(nb_ndim(s), 0);
    CHECK_EQ_INT(nb_numel(s), 1);
    CHECK_NEAR(nb_item(s), 2.5, 0, 0);
    nb_tensor *e = nb_zeros(NB_SHAPE(0, 4));
    CHECK_EQ_INT(nb_numel(e), 0);
    CHECK_TENSOR("zeros_like", nb_zeros_like(f), ((double[]){0, 0, 0, 0}), 4, 0, 0);
    CHECK_TENSOR("ones_like", nb_ones_like(f), ((double[]){1, 1, 1, 1}), 4, 0, 0);
    nb_scope_end();
}

static void arange_handles_negative_and_fractional_steps(void) {
    nb_scope_begin();
    CHECK_TENSOR("0..5", nb_arange(0, 5, 1), ((double[]){0, 1, 2, 3, 4}), 5, 0, 0);
    CHECK_TENSOR("quarter steps", nb_arange(0, 1, 0.25f), ((double[]){0, 0.25, 0.5, 0.75}), 4, 0, 0);
    CHECK_TENSOR("down by 1.5", nb_arange(5, 0, -1.5f), ((double[]){5, 3.5, 2, 0.5}), 4, 0, 0);
    CHECK_TENSOR("negative", nb_arange(0, -3, -1), ((double[]){0, -1, -2}), 3, 0, 0);
    /* torch.arange(0, 1, 0.1) has 10 elements, not 11: the end is excluded */
    nb_tensor *tenth = nb_arange(0, 1, 0.1f);
    CHECK_EQ_INT(nb_numel(tenth), 10);
    CHECK_NEAR(nb_get(tenth, NB_INDEX(9)), 0.9, 1e-6, 0);
    CHECK_EQ_INT(nb_numel(nb_arange(1, 1, 1)), 0);
    CHECK_EQ_INT(nb_numel(nb_arange(3, 1, 1)), 0); /* wrong direction: empty, as in torch */
    nb_scope_end();
}

static void from_data_and_from_int32_copy_the_array(void) {
    nb_scope_begin();
    float data[] = {1, 2, 3, 4, 5, 6};
    nb_tensor *t = nb_from_data(data, NB_SHAPE(3, 2));
    data[0] = 100; /* the tensor holds a copy */
    CHECK_TENSOR("from_data", t, ((double[]){1, 2, 3, 4, 5, 6}), 6, 0, 0);
    CHECK_NEAR(nb_get(t, NB_INDEX(2, 1)), 6, 0, 0);
    int32_t idx[] = {7, -3, 2147483647};
    nb_tensor *i = nb_from_int32(idx, NB_SHAPE(3));
    CHECK_EQ_INT(nb_dtype_of(i), NB_I32);
    CHECK(nb_data(i) == NULL); /* nb_data is for float32 only */
    CHECK_ERROR(NB_ERR_DTYPE, "data: tensor is int32");
    int32_t back[3];
    nb__copy_logical(back, i); /* the exact bits, through the backend */
    CHECK_EQ_INT(back[2], 2147483647);
    CHECK_NEAR(nb_get(i, NB_INDEX(1)), -3, 0, 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- random numbers */

static double mean_of(const float *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s / (double)n;
}

static double std_of(const float *v, int64_t n) {
    double m = mean_of(v, n), s = 0;
    for (int64_t i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (double)(n - 1));
}

static void rand_is_uniform_on_the_unit_interval(void) {
    nb_scope_begin();
    nb_manual_seed(1);
    enum { N = 100000 };
    nb_tensor *u = nb_rand(NB_SHAPE(N));
    const float *d = host_vals(u);
    float lo = 1, hi = 0;
    int below_tenth = 0;
    for (int i = 0; i < N; i++) {
        lo = d[i] < lo ? d[i] : lo;
        hi = d[i] > hi ? d[i] : hi;
        below_tenth += d[i] < 0.1f;
    }
    CHECK(lo >= 0.0f && hi < 1.0f);
    CHECK_NEAR(mean_of(d, N), 0.5, 0.005, 0);         /* sd of the mean: 0.0009 */
    CHECK_NEAR(std_of(d, N), sqrt(1.0 / 12.0), 0.005, 0);
    CHECK_NEAR(below_tenth / (double)N, 0.1, 0.005, 0);
    nb_scope_end();
}

static void randn_has_zero_mean_and_unit_std(void) {
    nb_scope_begin();
    nb_manual_seed(2);
    enum { N = 100000 };
    nb_tensor *z = nb_randn(NB_SHAPE(N));
    const float *d = host_vals(z);
    int beyond_2sd = 0;
    for (int i = 0; i < N; i++) beyond_2sd += fabsf(d[i]) > 2.0f;
    CHECK_NEAR(mean_of(d, N), 0.0, 0.015, 0);         /* sd of the mean: 0.003 */
    CHECK_NEAR(std_of(d, N), 1.0, 0.015, 0);          /* sd of the sd: 0.0022 */
    CHECK_NEAR(beyond_2sd / (double)N, 0.0455, 0.004, 0);
    nb_scope_end();
}

static void bernoulli_draws_one_with_probability_p(void) {
    nb_scope_begin();
    nb_manual_seed(3);
    enum { N = 20000 };
    nb_tensor *p = nb_full(NB_SHAPE(N), 0.3f);
    CHECK_NEAR(nb_item(nb_mean(nb_bernoulli(p))), 0.3, 0.015, 0);
    /* p = 0 and p = 1 are certain, also when p is read through a transposed view */
    nb_tensor *rows = nb_concat(2, (nb_tensor *[]){nb_zeros(NB_SHAPE(50, 1)), nb_ones(NB_SHAPE(50, 1))}, 1);
    nb_tensor *b = nb_bernoulli(nb_transpose(rows, 0, 1));
    CHECK_EQ_INT(nb_shape(b)[0], 2);
    CHECK_NEAR(nb_item(nb_sum(nb_slice(b, 0, 0, 1, 1))), 0, 0, 0);
    CHECK_NEAR(nb_item(nb_sum(nb_slice(b, 0, 1, 2, 1))), 50, 0, 0);
    nb_scope_end();
}

/* More than the 2^16 elements above which Philox fills in parallel. */
#define BIG_DRAW ((1 << 17) + 3)

static void draw_with_threads(int threads, float *u, float *z) {
    nb_set_num_threads(threads);
    nb_manual_seed(1234);
    nb_scope_begin();
    nb_copy_to(nb_rand(NB_SHAPE(BIG_DRAW)), u, BIG_DRAW);
    nb_copy_to(nb_randn(NB_SHAPE(BIG_DRAW)), z, BIG_DRAW);
    nb_scope_end();
}

static void same_seed_gives_same_numbers_on_one_or_two_threads(void) {
    int saved = nb_get_num_threads();
    float *u1 = malloc(sizeof(float) * BIG_DRAW), *u2 = malloc(sizeof(float) * BIG_DRAW);
    float *z1 = malloc(sizeof(float) * BIG_DRAW), *z2 = malloc(sizeof(float) * BIG_DRAW);
    draw_with_threads(1, u1, z1);
    draw_with_threads(2, u2, z2);
    CHECK(memcmp(u1, u2, sizeof(float) * BIG_DRAW) == 0);
    CHECK(memcmp(z1, z2, sizeof(float) * BIG_DRAW) == 0);
    draw_with_threads(1, u2, z2); /* and once more, to be sure it is the seed that decides */
    CHECK(memcmp(u1, u2, sizeof(float) * BIG_DRAW) == 0);
    nb_set_num_threads(saved);
    free(u1), free(u2), free(z1), free(z2);
}

/* nabla.h: element i of a draw uses counter (offset + i), and the offset advances by the draw's
 * size rounded up to a multiple of 4.  So a draw depends on the seed and on how many counters
 * earlier draws used, and equals the matching stretch of one long draw. */
static void draws_advance_the_offset_and_read_the_next_counters(void) {
    nb_scope_begin();
    nb_manual_seed(99);
    CHECK_EQ_INT(nb_rng_get_state().seed, 99);
    CHECK_EQ_INT(nb_rng_get_state().offset, 0);
    nb_tensor *a = nb_rand(NB_SHAPE(10));
    CHECK_EQ_INT(nb_rng_get_state().offset, 12);
    nb_tensor *b = nb_rand(NB_SHAPE(6));
    CHECK_EQ_INT(nb_rng_get_state().offset, 20);
    nb_tensor *z = nb_randn(NB_SHAPE(3)); /* Box-Muller: two counters per element */
    CHECK_EQ_INT(nb_rng_get_state().offset, 28);

    nb_manual_seed(99);
    nb_tensor *all = nb_rand(NB_SHAPE(18));
    float want[18], got[10];
    nb_copy_to(all, want, 18);
    nb_copy_to(a, got, 10);
    CHECK(memcmp(got, want, sizeof(float) * 10) == 0);
    nb_copy_to(b, got, 6);
    CHECK(memcmp(got, want + 12, sizeof(float) * 6) == 0);
    CHECK(memcmp(got, want, sizeof(float) * 6) != 0); /* a second draw is not a repeat */

    nb_rng_set_state((nb_generator){.seed = 99, .offset = 20});
    float z_again[3], z_first[3];
    nb_copy_to(nb_randn(NB_SHAPE(3)), z_again, 3);
    nb_copy_to(z, z_first, 3);
    CHECK(memcmp(z_again, z_first, sizeof z_first) == 0);
    nb_scope_end();
}

static void rng_state_can_be_saved_and_replayed(void) {
    nb_scope_begin();
    nb_manual_seed(5);
    nb_rand(NB_SHAPE(7));
    nb_generator saved = nb_rng_get_state();
    float first[5], again[5], other[5];
    nb_copy_to(nb_randn(NB_SHAPE(5)), first, 5);
    nb_rng_set_state(saved);
    nb_copy_to(nb_randn(NB_SHAPE(5)), again, 5);
    CHECK(memcmp(first, again, sizeof first) == 0);
    /* another seed at the same offset: other numbers */
    nb_rng_set_state((nb_generator){.seed = 6, .offset = saved.offset});
    nb_copy_to(nb_randn(NB_SHAPE(5)), other, 5);
    CHECK(memcmp(first, other, sizeof first) != 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- views */

static void reshape_of_contiguous_tensor_is_a_view(void) {
    nb_scope_begin();
    nb_tensor *a = nb_arange(0, 6, 1), *r = nb_reshape(a, NB_SHAPE(2, -1));
    CHECK_EQ_INT(nb_shape(r)[1], 3);
    CHECK(nb_shares_storage(a, r));
    nb_set(a, NB_INDEX(4), 100);
    CHECK_NEAR(nb_get(r, NB_INDEX(1, 1)), 100, 0, 0);
    nb_set(r, NB_INDEX(0, 2), -5);
    CHECK_NEAR(nb_get(a, NB_INDEX(2)), -5, 0, 0);
    nb_tensor *v = nb_view(r, NB_SHAPE(3, 2));
    CHECK(nb_shares_storage(a, v));
    CHECK_TENSOR("view", v, ((double[]){0, 1, -5, 3, 100, 5}), 6, 0, 0);
    nb_scope_end();
}

static void transpose_and_permute_swap_strides_and_share_storage(void) {
    nb_scope_begin();
    nb_tensor *a = nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3));
    nb_tensor *t = nb_transpose(a, 0, 1);
    CHECK_EQ_INT(nb_shape(t)[0], 3);
    CHECK_EQ_INT(nb_strides(t)[0], 1);
    CHECK_EQ_INT(nb_strides(t)[1], 3);
    CHECK(!nb_is_contiguous(t));
    CHECK(nb_shares_storage(a, t));
    CHECK_TENSOR("transpose", t, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0, 0);
    nb_set(t, NB_INDEX(2, 1), 50);
    CHECK_NEAR(nb_get(a, NB_INDEX(1, 2)), 50, 0, 0);

    nb_tensor *b = nb_reshape(nb_arange(0, 24, 1), NB_SHAPE(2, 3, 4));
    nb_tensor *p = nb_permute(b, 3, (int[]){2, 0, -2});
    CHECK_EQ_INT(nb_shape(p)[0], 4);
    CHECK_EQ_INT(nb_shape(p)[1], 2);
    CHECK_EQ_INT(nb_shape(p)[2], 3);
    CHECK_EQ_INT(nb_strides(p)[0], 1);
    CHECK_EQ_INT(nb_strides(p)[1], 12);
    CHECK_EQ_INT(nb_strides(p)[2], 4);
    CHECK(nb_shares_storage(b, p));
    CHECK_NEAR(nb_get(p, NB_INDEX(3, 1, 2)), 1 * 12 + 2 * 4 + 3, 0, 0);
    nb_scope_end();
}

static void slice_with_step_is_a_strided_view(void) {
    nb_scope_begin();
    nb_tensor *a = nb_arange(0, 10, 1);
    nb_tensor *s = nb_slice(a, 0, 1, 8, 3);
    CHECK_TENSOR("1:8:3", s, ((double[]){1, 4, 7}), 3, 0, 0);
    CHECK_EQ_INT(nb_strides(s)[0], 3);
    CHECK(nb_shares_storage(a, s));
    nb_set(s, NB_INDEX(1), -1);
    CHECK_NEAR(nb_get(a, NB_INDEX(4)), -1, 0, 0);
    CHECK_TENSOR("-3:", nb_slice(a, 0, -3, 100, 1), ((double[]){7, 8, 9}), 3, 0, 0);
    CHECK_EQ_INT(nb_numel(nb_slice(a, 0, 5, 2, 1)), 0);
    nb_tensor *m = nb_reshape(nb_arange(0, 12, 1), NB_SHAPE(3, 4));
    nb_tensor *cols = nb_slice(m, 1, 0, 4, 2);
    CHECK_TENSOR("columns 0 and 2", cols, ((double[]){0, 2, 4, 6, 8, 10}), 6, 0, 0);
    CHECK_EQ_INT(nb_strides(cols)[1], 2);
    nb_fill(cols, 0); /* fill writes through the view only */
    CHECK_TENSOR("after fill", m, ((double[]){0, 1, 0, 3, 0, 5, 0, 7, 0, 9, 0, 11}), 12, 0, 0);
    nb_scope_end();
}

static void expand_uses_stride_zero(void) {
    nb_scope_begin();
    nb_tensor *a = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3, 1));
    nb_tensor *e = nb_expand(a, NB_SHAPE(2, 3, 4));
    CHECK_EQ_INT(nb_ndim(e), 3);
    CHECK_EQ_INT(nb_strides(e)[0], 0);
    CHECK_EQ_INT(nb_strides(e)[1], 1);
    CHECK_EQ_INT(nb_strides(e)[2], 0);
    CHECK(nb_shares_storage(a, e));
    CHECK_NEAR(nb_get(e, NB_INDEX(1, 2, 3)), 3, 0, 0);
    nb_set(a, NB_INDEX(1, 0), 20);
    CHECK_NEAR(nb_get(e, NB_INDEX(0, 1, 2)), 20, 0, 0);
    nb_tensor *k = nb_expand(a, NB_SHAPE(-1, 2)); /* -1 keeps the size */
    CHECK_TENSOR("expand -1", k, ((double[]){1, 1, 20, 20, 3, 3}), 6, 0, 0);
    nb_scope_end();
}

static void squeeze_unsqueeze_and_flatten_are_views(void) {
    nb_scope_begin();
    nb_tensor *a = nb_ones(NB_SHAPE(1, 3, 1));
    nb_tensor *all = nb_squeeze(a, NB_ALL), *first = nb_squeeze(a, 0), *kept = nb_squeeze(a, 1);
    CHECK_EQ_INT(nb_ndim(all), 1);
    CHECK_EQ_INT(nb_ndim(first), 2);
    CHECK_EQ_INT(nb_shape(first)[0], 3);
    CHECK_EQ_INT(nb_ndim(kept), 3); /* a dim that is not 1 stays, as in torch */
    nb_tensor *u = nb_unsqueeze(all, -1);
    CHECK_EQ_INT(nb_ndim(u), 2);
    CHECK_EQ_INT(nb_shape(u)[0], 3);
    CHECK_EQ_INT(nb_shape(u)[1], 1);
    nb_tensor *u0 = nb_unsqueeze(all, 0);
    CHECK_EQ_INT(nb_shape(u0)[0], 1);
    CHECK(nb_shares_storage(a, all) && nb_shares_storage(a, u) && nb_shares_storage(a, u0));

    nb_tensor *b = nb_reshape(nb_arange(0, 24, 1), NB_SHAPE(2, 3, 4));
    nb_tensor *f12 = nb_flatten(b, 1, 2), *f = nb_flatten(b, 0, -1);
    CHECK_EQ_INT(nb_ndim(f12), 2);
    CHECK_EQ_INT(nb_shape(f12)[1], 12);
    CHECK_EQ_INT(nb_ndim(f), 1);
    CHECK_EQ_INT(nb_shape(f)[0], 24);
    CHECK(nb_shares_storage(b, f12) && nb_shares_storage(b, f));
    CHECK_NEAR(nb_get(f12, NB_INDEX(1, 5)), 17, 0, 0);
    nb_scope_end();
}

static void reshape_of_non_contiguous_tensor_copies_and_view_refuses(void) {
    nb_scope_begin();
    nb_tensor *a = nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3));
    nb_tensor *t = nb_transpose(a, 0, 1);
    nb_tensor *r = nb_reshape(t, NB_SHAPE(6));
    CHECK(r != NULL);
    CHECK(!nb_shares_storage(a, r));
    CHECK_TENSOR("logical order", r, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0, 0);
    nb_set(a, NB_INDEX(0, 0), 9); /* the copy does not follow */
    CHECK_NEAR(nb_get(r, NB_INDEX(0)), 0, 0, 0);
    CHECK(nb_view(t, NB_SHAPE(6)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "view: [3,2] cannot be viewed as [6]");
    /* a permutation that keeps rows together still views */
    nb_tensor *v = nb_view(t, NB_SHAPE(3, 1, 2));
    CHECK(v != NULL && nb_shares_storage(a, v));
    nb_scope_end();
}

static void contiguous_copies_only_when_needed(void) {
    nb_scope_begin();
    nb_tensor *a = nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3));
    CHECK(nb_contiguous(a) == a);
    nb_tensor *t = nb_transpose(a, 0, 1), *c = nb_contiguous(t);
    CHECK(nb_is_contiguous(c));
    CHECK(!nb_shares_storage(a, c));
    CHECK_EQ_INT(nb_strides(c)[0], 2);
    CHECK_TENSOR("contiguous", c, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0, 0);
    nb_scope_end();

    /* with no scope open, the caller owns one more reference to the same tensor */
    nb_tensor *h = nb_ones(NB_SHAPE(2)), *same = nb_contiguous(h);
    CHECK(same == h);
    nb_tensor_free(same);
    CHECK(nb_is_alive(h));
    nb_tensor_free(h);
}

/* ---------------------------------------------------------------- broadcasting */

static void broadcasting_aligns_trailing_dims(void) {
    nb_scope_begin();
    nb_tensor *col = nb_from_data((float[]){10, 20, 30}, NB_SHAPE(3, 1));
    nb_tensor *row = nb_arange(0, 4, 1);
    nb_tensor *s = nb_add(col, row);
    CHECK_EQ_INT(nb_ndim(s), 2);
    CHECK_EQ_INT(nb_shape(s)[0], 3);
    CHECK_EQ_INT(nb_shape(s)[1], 4);
    CHECK_TENSOR("[3,1] + [4]", s, ((double[]){10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33}),
                 12, 0, 0);
    nb_tensor *a = nb_from_data((float[]){1, 2, 3, 4, 5, 6}, NB_SHAPE(2, 1, 3));
    nb_tensor *b = nb_from_data((float[]){1, -1}, NB_SHAPE(2, 1));
    nb_tensor *p = nb_mul(a, b);
    CHECK_EQ_INT(nb_ndim(p), 3);
    CHECK_EQ_INT(nb_shape(p)[1], 2);
    CHECK_TENSOR("[2,1,3] * [2,1]", p,
                 ((double[]){1, 2, 3, -1, -2, -3, 4, 5, 6, -4, -5, -6}), 12, 0, 0);
    nb_tensor *scalar = nb_full(0, NULL, 2);
    CHECK_TENSOR("0-d - [2,2]", nb_sub(scalar, nb_reshape(nb_arange(0, 4, 1), NB_SHAPE(2, 2))),
                 ((double[]){2, 1, 0, -1}), 4, 0, 0);
    /* a transposed operand broadcasts through its strides */
    nb_tensor *tt = nb_transpose(nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3)), 0, 1);
    CHECK_TENSOR("[3,2]^T + [2]", nb_add(tt, nb_from_data((float[]){100, 200}, NB_SHAPE(2))),
                 ((double[]){100, 203, 101, 204, 102, 205}), 6, 0, 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- element access */

static void get_set_item_and_bulk_copies_follow_strides(void) {
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3));
    CHECK_EQ_INT(nb_set(a, NB_INDEX(1, 2), 4.5f), NB_OK);
    CHECK_NEAR(nb_get(a, NB_INDEX(1, 2)), 4.5, 0, 0);
    CHECK_NEAR(nb_item(nb_full(NB_SHAPE(1, 1), -3)), -3, 0, 0);
    nb_tensor *corner = nb_slice(nb_slice(a, 0, 1, 2, 1), 1, 2, 3, 1); /* [1,1], offset 5 */
    CHECK_NEAR(nb_item(corner), 4.5, 0, 0);

    nb_tensor *t = nb_transpose(a, 0, 1); /* [3,2] view */
    CHECK_EQ_INT(nb_copy_from(t, (float[]){1, 2, 3, 4, 5, 6}, 6), NB_OK);
    CHECK_TENSOR("written through the transpose", a, ((double[]){1, 3, 5, 2, 4, 6}), 6, 0, 0);
    float out[8] = {0};
    CHECK_EQ_INT(nb_copy_to(t, out, 8), NB_OK); /* a larger buffer is fine */
    CHECK_ARRAY("copy_to logical order", out, ((double[]){1, 2, 3, 4, 5, 6, 0, 0}), 8, 0, 0);
    CHECK_EQ_INT(nb_fill(t, 7), NB_OK);
    CHECK_TENSOR("fill", a, ((double[]){7, 7, 7, 7, 7, 7}), 6, 0, 0);

    CHECK_EQ_INT(nb_copy_to(a, out, 5), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "copy_to: destination holds 5 floats, [2,3] needs 6");
    CHECK_EQ_INT(nb_copy_from(a, out, 7), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "copy_from: source holds 7 floats, [2,3] needs 6");
    CHECK(isnan(nb_get(a, NB_INDEX(2, 0))));
    CHECK_ERROR(NB_ERR_DIM, "get: index 2 is out of range for dim 0 of [2,3]");
    CHECK_EQ_INT(nb_set(a, NB_INDEX(0, -1), 1), NB_ERR_DIM);
    CHECK_ERROR(NB_ERR_DIM, "set: index -1 is out of range for dim 1 of [2,3]");
    CHECK_EQ_INT(nb_size(a, -1), 3);
    CHECK_EQ_INT(nb_size(a, 2), -1);
    CHECK_ERROR(NB_ERR_DIM, "size: dim 2 is out of range for a tensor of rank 2");
    nb_scope_end();
}

/* ---------------------------------------------------------------- dtypes */

static uint16_t bits16(const nb_tensor *t, int64_t i) {
    uint16_t b;
    nb__backend(t->device)->copy_d2h(&b, (const uint16_t *)t->storage->data + t->offset + i, sizeof b);
    return b;
}

/* Expected encodings from torch: torch.tensor(v).half().view(torch.int16), and the same with
 * bfloat16. */
static void f16_and_bf16_encode_like_ieee_with_round_to_even(void) {
    nb_scope_begin();
    const float v[] = {
        1.0f, -2.5f, 65504.0f, 65519.0f, 65520.0f,
        0x1p-24f,           /* smallest half subnormal */
        0x1p-25f,           /* half-way to it: ties to even, 0 */
        0x3p-25f,           /* 1.5 units: ties to even, 2 units */
        0x3FFp-24f,         /* largest half subnormal */
        0x1p-14f,           /* smallest half normal */
        1.0f + 0x1p-11f,    /* half-way between 1 and the next half: stays 1 (even) */
        1.0f + 0x3p-11f,    /* half-way, rounds up to the even neighbour */
        1.0f + 0x1p-8f,     /* bf16 tie: stays 1 */
        1.0f + 0x3p-8f,     /* bf16 tie: rounds up to even */
        INFINITY, -INFINITY, -0.0f, 1e-40f, 3.4028235e38f,
    };
    const uint16_t want_half[] = {0x3c00, 0xc100, 0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000,
                                  0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c02, 0x3c04, 0x3c0c,
                                  0x7c00, 0xfc00, 0x8000, 0x0000, 0x7c00};
    const uint16_t want_bf16[] = {0x3f80, 0xc020, 0x4780, 0x4780, 0x4780, 0x3380, 0x3300,
                                  0x33c0, 0x3880, 0x3880, 0x3f80, 0x3f80, 0x3f80, 0x3f82,
                                  0x7f80, 0xff80, 0x8000, 0x0001, 0x7f80};
    enum { N = sizeof v / sizeof v[0] };
    nb_tensor *x = nb_from_data(v, NB_SHAPE(N));
    nb_tensor *h = nb_to_dtype(x, NB_F16), *b = nb_to_dtype(x, NB_BF16);
    CHECK_EQ_INT(nb_dtype_of(h), NB_F16);
    CHECK_EQ_INT(nb_dtype_of(b), NB_BF16);
    for (int i = 0; i < N; i++) {
        if (bits16(h, i) != want_half[i] || bits16(b, i) != want_bf16[i])
            CHECK_FAIL_("value %d (%.9g): half 0x%04x want 0x%04x, bf16 0x%04x want 0x%04x", i,
                        (double)v[i], bits16(h, i), want_half[i], bits16(b, i), want_bf16[i]);
        else check_passed_++;
    }
    /* NaN stays NaN: exponent all ones, mantissa not zero */
    nb_tensor *nan = nb_full(NB_SHAPE(1), NAN);
    uint16_t hn = bits16(nb_to_dtype(nan, NB_F16), 0), bn = bits16(nb_to_dtype(nan, NB_BF16), 0);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x03ff) != 0);
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x007f) != 0);
    CHECK(isnan(nb_get(nb_to_dtype(nan, NB_F16), NB_INDEX(0))));
    nb_scope_end();
}

static void half_and_bfloat16_round_trip_exactly_representable_values(void) {
    nb_scope_begin();
    const double v[] = {1.0, -2.5, 65504.0, 0x1p-24, 0x3FFp-24, 0x1p-14, 0.0999755859375, -0.0,
                        INFINITY, -INFINITY};
    enum { N = sizeof v / sizeof v[0] };
    float f[N];
    for (int i = 0; i < N; i++) f[i] = (float)v[i];
    nb_tensor *x = nb_from_data(f, NB_SHAPE(N));
    nb_tensor *back = nb_to_dtype(nb_to_dtype(x, NB_F16), NB_F32);
    CHECK_EQ_INT(nb_dtype_of(back), NB_F32);
    CHECK_TENSOR("f16 round trip", back, v, N, 0, 0);
    CHECK(signbit(nb_get(back, NB_INDEX(7))));
    /* bf16 keeps 8 significant bits: these fit */
    const double w[] = {1.0, -2.5, 65536.0, 0.09375, 0x1p100, -0x1p-126};
    float g[6];
    for (int i = 0; i < 6; i++) g[i] = (float)w[i];
    nb_tensor *bb = nb_to_dtype(nb_to_dtype(nb_from_data(g, NB_SHAPE(6)), NB_BF16), NB_F32);
    CHECK_TENSOR("bf16 round trip", bb, w, 6, 0, 0);
    /* nb_get and nb_set convert on the way: 0.1 is stored as the nearest half */
    nb_tensor *h = nb_to_dtype(nb_zeros(NB_SHAPE(2)), NB_F16);
    nb_set(h, NB_INDEX(1), 0.1f);
    CHECK_NEAR(nb_get(h, NB_INDEX(1)), 0.0999755859375, 0, 0);
    CHECK_EQ_INT(bits16(h, 1), 0x2e66);
    nb_scope_end();
}

static void int8_conversion_rounds_and_saturates(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){-300, -128.4f, -1.5f, -0.4f, 0.5f, 1.5f, 2.5f, 126.6f, 1e9f},
                                NB_SHAPE(9));
    nb_tensor *q = nb_to_dtype(x, NB_I8);
    CHECK_EQ_INT(nb_dtype_of(q), NB_I8);
    int8_t raw[9];
    nb__copy_logical(raw, q);
    const int8_t want[] = {-128, -128, -2, 0, 0, 2, 2, 127, 127};
    CHECK(memcmp(raw, want, sizeof want) == 0);
    CHECK_TENSOR("int8 as float", nb_to_dtype(q, NB_F32),
                 ((double[]){-128, -128, -2, 0, 0, 2, 2, 127, 127}), 9, 0, 0);
    nb_scope_end();
}

static void int32_conversion_rounds_and_saturates(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1.4f, -2.6f, 2.5f, 3e9f, -3e9f, 16777216}, NB_SHAPE(6));
    nb_tensor *i = nb_to_dtype(x, NB_I32);
    int32_t raw[6];
    nb__copy_logical(raw, i);
    const int32_t want[] = {1, -3, 2, INT32_MAX, INT32_MIN, 16777216};
    CHECK(memcmp(raw, want, sizeof want) == 0);
    nb_tensor *back = nb_to_dtype(nb_from_int32((int32_t[]){-7, 0, 123456}, NB_SHAPE(3)), NB_F32);
    CHECK_TENSOR("int32 to f32", back, ((double[]){-7, 0, 123456}), 3, 0, 0);
    /* converting a strided view reads it in logical order */
    nb_tensor *t = nb_transpose(nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3)), 0, 1);
    nb_tensor *ti = nb_to_dtype(t, NB_I32);
    CHECK(nb_is_contiguous(ti));
    CHECK_TENSOR("int32 of a transpose", ti, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0, 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- printing */

static void check_repr(const char *file, int line, const nb_tensor *t, const char *want) {
    char buf[4096];
    int n = nb_format(t, buf, sizeof buf);
    if (n == (int)strlen(want) && strcmp(buf, want) == 0) {
        check_passed_++;
        return;
    }
    check_failed_++;
    fprintf(stderr, "%s:%d: nb_format gave (%d chars)\n%s\nwant (%d chars)\n%s\n", file, line, n,
            buf, (int)strlen(want), want);
}
#define CHECK_REPR(t, want) check_repr(__FILE__, __LINE__, t, want)

/* Each expected string is the output of repr() of the same tensor made with torch 1.13
 * (Debian's python3-torch), e.g. repr(torch.tensor([[1., 2.], [3., 4.]])). */
static void format_matches_torch_repr(void) {
    nb_scope_begin();
    CHECK_REPR(nb_from_data((float[]){1, 2, 3, 4}, NB_SHAPE(2, 2)),
               "tensor([[1., 2.],\n"
               "        [3., 4.]])");
    CHECK_REPR(nb_from_data((float[]){0.5f, -1.25f, 3.14159f}, NB_SHAPE(3)),
               "tensor([ 0.5000, -1.2500,  3.1416])");
    CHECK_REPR(nb_from_data((float[]){1e-5f, 1, 12345}, NB_SHAPE(3)),
               "tensor([1.0000e-05, 1.0000e+00, 1.2345e+04])");
    CHECK_REPR(nb_from_data((float[]){1, 2e9f}, NB_SHAPE(2)), /* integers, but past 1e8 */
               "tensor([1.0000e+00, 2.0000e+09])");
    CHECK_REPR(nb_full(0, NULL, 3.5f), "tensor(3.5000)");
    CHECK_REPR(nb_from_int32((int32_t[]){1, -20, 300}, NB_SHAPE(3)),
               "tensor([  1, -20, 300], dtype=torch.int32)");
    CHECK_REPR(nb_from_data((float[]){1.5f, NAN, -INFINITY}, NB_SHAPE(3)),
               "tensor([1.5000,    nan,   -inf])");
    CHECK_REPR(nb_to_dtype(nb_from_data((float[]){1.5f, 2}, NB_SHAPE(2)), NB_F16),
               "tensor([1.5000, 2.0000], dtype=torch.float16)");
    CHECK_REPR(nb_zeros(NB_SHAPE(0, 3)), "tensor([], size=(0, 3))");

    nb_tensor *x = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    CHECK_REPR(x, "tensor([1., 2.], requires_grad=True)");
    CHECK_REPR(nb_mul(x, nb_from_data((float[]){3, 4}, NB_SHAPE(2))),
               "tensor([3., 8.], grad_fn=<MulBackward0>)");

    CHECK_REPR(nb_reshape(nb_arange(0, 12, 1), NB_SHAPE(2, 2, 3)),
               "tensor([[[ 0.,  1.,  2.],\n"
               "         [ 3.,  4.,  5.]],\n"
               "\n"
               "        [[ 6.,  7.,  8.],\n"
               "         [ 9., 10., 11.]]])");
    /* torch.arange(30.) * 0.5 - 3: a long row wraps at 80 columns */
    CHECK_REPR(nb_add_scalar(nb_mul_scalar(nb_arange(0, 30, 1), 0.5f), -3),
               "tensor([-3.0000, -2.5000, -2.0000, -1.5000, -1.0000, -0.5000,  0.0000,  0.5000,\n"
               "         1.0000,  1.5000,  2.0000,  2.5000,  3.0000,  3.5000,  4.0000,  4.5000,\n"
               "         5.0000,  5.5000,  6.0000,  6.5000,  7.0000,  7.5000,  8.0000,  8.5000,\n"
               "         9.0000,  9.5000, 10.0000, 10.5000, 11.0000, 11.5000])");
    /* torch.arange(8., requires_grad=True) * 0.25 + 10: the suffix moves to its own line */
    nb_tensor *r = nb_arange(0, 8, 1);
    nb_set_requires_grad(r, true);
    CHECK_REPR(nb_add(nb_mul(r, nb_full(0, NULL, 0.25f)), nb_full(0, NULL, 10)),
               "tensor([10.0000, 10.2500, 10.5000, 10.7500, 11.0000, 11.2500, 11.5000, 11.7500],\n"
               "       grad_fn=<AddBackward0>)");
    /* more than 1000 elements: three at each end of each dim; torch.arange(2000.) */
    CHECK_REPR(nb_arange(0, 2000, 1),
               "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n"
               "        1.9990e+03])");
    /* torch.arange(1200.).reshape(40, 30) / 1000 */
    CHECK_REPR(nb_div(nb_reshape(nb_arange(0, 1200, 1), NB_SHAPE(40, 30)), nb_full(0, NULL, 1000)),
               "tensor([[0.0000e+00, 1.0000e-03, 2.0000e-03,  ..., 2.7000e-02, 2.8000e-02,\n"
               "         2.9000e-02],\n"
               "        [3.0000e-02, 3.1000e-02, 3.2000e-02,  ..., 5.7000e-02, 5.8000e-02,\n"
               "         5.9000e-02],\n"
               "        [6.0000e-02, 6.1000e-02, 6.2000e-02,  ..., 8.7000e-02, 8.8000e-02,\n"
               "         8.9000e-02],\n"
               "        ...,\n"
               "        [1.1100e+00, 1.1110e+00, 1.1120e+00,  ..., 1.1370e+00, 1.1380e+00,\n"
               "         1.1390e+00],\n"
               "        [1.1400e+00, 1.1410e+00, 1.1420e+00,  ..., 1.1670e+00, 1.1680e+00,\n"
               "         1.1690e+00],\n"
               "        [1.1700e+00, 1.1710e+00, 1.1720e+00,  ..., 1.1970e+00, 1.1980e+00,\n"
               "         1.1990e+00]])");
    nb_scope_end();
}

static void format_reports_the_length_it_needs_like_snprintf(void) {
    nb_scope_begin();
    nb_tensor *t = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    const char *want = "tensor([1., 2.])";
    char small[8];
    CHECK_EQ_INT(nb_format(t, NULL, 0), (int)strlen(want));
    CHECK_EQ_INT(nb_format(t, small, sizeof small), (int)strlen(want));
    CHECK(strcmp(small, "tensor(") == 0); /* truncated and terminated */
    nb_scope_end();
}

/* Run twice by ctest: on the CPU backend, and with NB_BACKEND=guarded, whose tensor memory the
 * host cannot touch: there nb_data refuses and a direct read of a tensor's memory faults (in a
 * child process), while the copies still give the values. */
static void guarded_backend_keeps_tensor_memory_from_the_host(void) {
    const char *env = getenv("NB_BACKEND");
    bool guarded = env && strcmp(env, "guarded") == 0;
    CHECK_EQ_INT(strcmp(nb__backend(NB_CPU)->name, guarded ? "guarded" : "cpu"), 0);
    nb_tensor *t = nb_full(NB_SHAPE(4), 2.0f);
    CHECK((nb_data(t) == NULL) == guarded);
    if (guarded) CHECK_ERROR(NB_ERR_DEVICE, "data: the guarded backend's memory is not host memory");
    CHECK_TENSOR("copied out", t, ((double[]){2, 2, 2, 2}), 4, 0, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(*(volatile float *)nb__f32(t) == 2.0f ? 0 : 1);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (guarded) /* SIGSEGV, or a sanitizer's report and exit */
        CHECK(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    nb_tensor_free(t);
}

int main(void) {
    constant_fills_have_shape_and_values();
    arange_handles_negative_and_fractional_steps();
    from_data_and_from_int32_copy_the_array();
    rand_is_uniform_on_the_unit_interval();
    randn_has_zero_mean_and_unit_std();
    bernoulli_draws_one_with_probability_p();
    same_seed_gives_same_numbers_on_one_or_two_threads();
    draws_advance_the_offset_and_read_the_next_counters();
    rng_state_can_be_saved_and_replayed();
    reshape_of_contiguous_tensor_is_a_view();
    transpose_and_permute_swap_strides_and_share_storage();
    slice_with_step_is_a_strided_view();
    expand_uses_stride_zero();
    squeeze_unsqueeze_and_flatten_are_views();
    reshape_of_non_contiguous_tensor_copies_and_view_refuses();
    contiguous_copies_only_when_needed();
    broadcasting_aligns_trailing_dims();
    get_set_item_and_bulk_copies_follow_strides();
    f16_and_bf16_encode_like_ieee_with_round_to_even();
    half_and_bfloat16_round_trip_exactly_representable_values();
    int8_conversion_rounds_and_saturates();
    int32_conversion_rounds_and_saturates();
    format_matches_torch_repr();
    format_reports_the_length_it_needs_like_snprintf();
    guarded_backend_keeps_tensor_memory_from_the_host();
    return check_summary();
}
