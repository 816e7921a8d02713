/* table.c — the op table: one row per entry of NB_OPS (op.h), in the enum's order. */
#include "op.h"

/* The kernels column of NB_OPS: which dtypes an op has kernels for. */
#define NB_KERNELS_F32(fam, grad_fn) {[NB_F32] = {nb__fwd_##fam, (grad_fn) ? nb__bwd_##fam : NULL}}
#define NB_KERNELS_ANY(fam, grad_fn)                                                         \
    {[NB_F32] = {nb__fwd_##fam, (grad_fn) ? nb__bwd_##fam : NULL},                          \
     [NB_F16] = {nb__fwd_##fam, NULL}, [NB_BF16] = {nb__fwd_##fam, NULL},                   \
     [NB_I8] = {nb__fwd_##fam, NULL}, [NB_I32] = {nb__fwd_##fam, NULL},                     \
     [NB_U8] = {nb__fwd_##fam, NULL}, [NB_I16] = {nb__fwd_##fam, NULL},                     \
     [NB_F8_E4M3] = {nb__fwd_##fam, NULL}, [NB_F8_E5M2] = {nb__fwd_##fam, NULL}}
/* ANY names every dtype: a new one must be added there (and only float32 takes gradients). */
_Static_assert(NB_DTYPE_COUNT == 9, "NB_KERNELS_ANY lists every nb_dtype");

#define NB_OP_ROW_(id, name, grad_fn, arity, fam, inputs, kernels) \
    {name, grad_fn, arity, inputs, NB_KERNELS_##kernels(fam, grad_fn)},
const nb_op_def nb__ops[] = {NB_OPS(NB_OP_ROW_)};
_Static_assert(sizeof nb__ops / sizeof nb__ops[0] == NB_OP_COUNT, "one row per op");

/* What the compiler can check of each row: a sensible arity, and no more input rules than
 * inputs ("T" or "TI"; the last rule repeats for the rest). */
#define NB_OP_CHECK_(id, name, grad_fn, arity, fam, inputs, kernels)                          \
    _Static_assert((arity) == -1 || (arity) >= 1, #id ": arity is -1 or at least 1");       \
    _Static_assert(sizeof(inputs) >= 2 && ((arity) == -1 || (int)sizeof(inputs) - 1 <= (arity)), \
                   #id ": one input rule per input at most");
NB_OPS(NB_OP_CHECK_)
