#!/usr/bin/python3
"""gen_golden.py: PyTorch reference vectors for the op tests, written to tests/golden/ops.json.

Regenerate from the repository root with Debian's python3-torch (not a pyenv python):

    /usr/bin/python3 tools/gen_golden.py

The output is deterministic: each case draws from a torch.Generator seeded with a hash of its
name, so adding a case changes no other case's numbers.

The cases mirror tests/op_cases.h one for one, under the same names and with the same fields;
tests/test_golden.c checks every field against that table, so a case edited in one place and
not the other fails the test by name.  For each case the file holds the input values (float32
values in logical, row-major order, whatever the layout nabla reads them through), the extra
arguments, a fixed random R of the output's shape, torch's output and torch's gradient of every
float input under loss = sum(out * R).  torch computes in float64 from the float32 inputs, so the
reference is exact to far below the test's tolerance.  Numbers keep 9 significant digits, which
round-trips float32.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

import kan_torch

MARGIN = 0.1  # OC_MARGIN in tests/op_cases.h
ALL = -128    # NB_ALL in include/nabla.h
INF = math.inf
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "ops.json")


def f32(x):
    """x rounded to float32, as a Python float."""
    return struct.unpack("f", struct.pack("f", x))[0]


# ---- input specs (the macros of op_cases.h)

def spec(draw, lo, hi, shape, layout="contiguous", avoid=()):
    return {"draw": draw, "lo": lo, "hi": hi, "shape": list(shape), "layout": layout,
            "avoid": list(avoid)}


def uni(lo, hi, *shape, layout="contiguous"):
    return spec("uniform", lo, hi, shape, layout)


def uni_t(lo, hi, *shape):
    return spec("uniform", lo, hi, shape, "transposed")


def uni_s(lo, hi, *shape):
    return spec("uniform", lo, hi, shape, "strided")


def away(lo, hi, p, *shape, layout="contiguous"):
    return spec("uniform", lo, hi, shape, layout, [p])


def away2(lo, hi, p, q, *shape):
    return spec("uniform", lo, hi, shape, "contiguous", [p, q])


def scalar(lo, hi):
    return spec("uniform", lo, hi, ())


def distinct(*shape, layout="contiguous"):
    return spec("distinct", -2, 2, shape, layout)


def distinct_t(*shape):
    return distinct(*shape, layout="transposed")


def ints(lo, hi, *shape, layout="contiguous"):
    return spec("ints", lo, hi, shape, layout)


def mask(*shape):
    return spec("mask", 0, 1, shape)


def fixed(lo, hi, *shape):
    """whole numbers lo..hi that are never differentiated (fake quantization's qparams)"""
    return spec("fixed", lo, hi, shape)


def grid(lo, hi, *shape):
    """B-spline knots: every row the evenly spaced points lo..hi, never differentiated"""
    return spec("grid", lo, hi, shape)


def index(n, *shape):
    return spec("index", 0, n, shape)


def case(name, op, fn, inputs, dims=(), keepdim=False, dim=0, s0=0.0, s1=0.0, start=0, end=0,
         step=0, sizes=(), nonsmooth=False, pool=None, scale=(0, 0), align_corners=False,
         conv=None, conv_t=None):
    """pool: the nb_pool2d_opts of max/avg_pool2d as a dict (kernel, stride, padding, ceil_mode,
    exclude_pad; what is left out is 0, as in C); scale: upsampling factors [h, w]."""
    pool = dict({"kernel": [0, 0], "stride": [0, 0], "padding": [0, 0], "ceil_mode": False,
                 "exclude_pad": False}, **(pool or {}))
    # conv, conv_t: the nb_conv2d_opts / nb_conv_transpose2d_opts of conv2d /
    # conv_transpose2d, the same way
    conv = dict({"stride": [0, 0], "padding": [0, 0], "same": False, "dilation": [0, 0],
                 "groups": 0}, **(conv or {}))
    conv_t = dict({"stride": [0, 0], "padding": [0, 0], "output_padding": [0, 0],
                   "dilation": [0, 0], "groups": 0}, **(conv_t or {}))
    return {"name": name, "op": op, "fn": fn, "inputs": inputs, "nonsmooth": nonsmooth,
            "args": {"dims": list(dims), "keepdim": keepdim, "dim": dim, "s0": s0, "s1": s1,
                     "start": start, "end": end, "step": step, "sizes": list(sizes),
                     "pool": pool, "scale": list(scale), "align_corners": align_corners,
                     "conv": conv, "conv_t": conv_t}}


CASES = [
    # binary elementwise: same shapes, broadcasting both ways, 0-d, non-contiguous
    case("add_same_shape", "add", "add", [uni(-1, 1, 3, 4), uni(-1, 1, 3, 4)]),
    case("add_broadcast_both", "add", "add", [uni(-1, 1, 2, 1, 4), uni(-1, 1, 3, 1)]),
    case("add_transposed", "add", "add", [uni_t(-1, 1, 3, 4), uni(-1, 1, 4)]),
    case("sub_broadcast", "sub", "sub", [uni(-1, 1, 4, 1), uni(-1, 1, 1, 3)]),
    case("sub_scalar_tensor", "sub", "sub", [scalar(-1, 1), uni_s(-1, 1, 2, 3)]),
    case("mul_broadcast", "mul", "mul", [uni(-1, 1, 2, 3, 4), uni(-1, 1, 4)]),
    case("mul_noncontiguous", "mul", "mul", [uni_t(-1, 1, 3, 4), uni_s(-1, 1, 3, 4)]),
    case("div_broadcast", "div", "div", [uni(-1, 1, 3, 4), uni(0.5, 2, 4)]),
    case("div_broadcast_numerator", "div", "div", [uni(-1, 1, 1, 4), uni_t(0.5, 2, 3, 4)]),
    case("pow_same_shape", "pow", "pow", [uni(0.5, 2, 3, 4), uni(-1.5, 2, 3, 4)]),
    case("pow_broadcast_exponent", "pow", "pow", [uni(0.5, 2, 2, 3), scalar(0.5, 2.5)]),
    case("pow_zero_base", "pow", "pow", [ints(0, 1, 2, 3), uni(1.5, 2.5, 3)], nonsmooth=True),
    # comparisons: small integers, so that ties (eq, le, ge) happen
    case("eq_broadcast", "eq", "eq", [ints(0, 2, 3, 4), ints(0, 2, 4)]),
    case("ne_broadcast", "ne", "ne", [ints(0, 2, 3, 1), ints(0, 2, 1, 4)]),
    case("lt_same_shape", "lt", "lt", [ints(0, 2, 3, 4), ints(0, 2, 3, 4)]),
    case("le_transposed", "le", "le", [ints(0, 2, 3, 4), ints(0, 2, 3, 4, layout="transposed")]),
    case("gt_scalar_tensor", "gt", "gt", [ints(0, 2, 2, 3), ints(0, 2)]),
    case("ge_broadcast", "ge", "ge", [ints(0, 2, 2, 1, 3), ints(0, 2, 4, 1)]),
    # unary elementwise
    case("neg", "neg", "neg", [uni(-1, 1, 3, 4)]),
    case("exp", "exp", "exp", [uni(-2, 2, 3, 4)]),
    case("exp_transposed", "exp", "exp", [uni_t(-2, 2, 3, 4)]),
    case("log", "log", "log", [uni(0.2, 3, 3, 4)]),
    case("sqrt", "sqrt", "sqrt", [uni(0.2, 3, 3, 4)]),
    case("abs", "abs", "abs", [away(-1, 1, 0, 3, 4)]),
    case("abs_at_zero", "abs", "abs", [ints(-1, 1, 3, 4)], nonsmooth=True),
    case("sin", "sin", "sin", [uni(-3, 3, 3, 4)]),
    case("cos", "cos", "cos", [uni(-3, 3, 3, 4)]),
    case("tanh", "tanh", "tanh", [uni(-2, 2, 3, 4)]),
    case("tanh_scalar", "tanh", "tanh", [scalar(-2, 2)]),
    case("sigmoid", "sigmoid", "sigmoid", [uni(-3, 3, 3, 4)]),
    case("relu", "relu", "relu", [away(-1, 1, 0, 3, 4)]),
    case("relu_strided", "relu", "relu", [away(-1, 1, 0, 3, 4, layout="strided")]),
    case("relu_at_zero", "relu", "relu", [ints(-1, 1, 3, 4)], nonsmooth=True),
    case("pow_scalar_square", "pow_scalar", "pow_scalar", [uni(-2, 2, 3, 4)], s0=2),
    case("pow_scalar_fraction", "pow_scalar", "pow_scalar", [uni(0.3, 2, 3, 4)], s0=2.5),
    case("pow_scalar_cube_negative", "pow_scalar", "pow_scalar", [uni(-2, -0.3, 3, 4)], s0=3),
    case("pow_scalar_negative", "pow_scalar", "pow_scalar", [uni_t(0.5, 2, 3, 4)], s0=-1.5),
    case("clamp", "clamp", "clamp", [away2(-1.5, 1.5, -0.5, 0.5, 3, 4)], s0=-0.5, s1=0.5),
    case("clamp_min_only", "clamp", "clamp", [away(-1, 1, 0.25, 3, 4)], s0=0.25, s1=INF),
    case("clamp_max_only", "clamp", "clamp", [away(-1, 1, -0.25, 3, 4)], s0=-INF, s1=-0.25),
    case("clamp_at_bounds", "clamp", "clamp", [ints(-2, 2, 3, 4)], s0=-1, s1=1, nonsmooth=True),
    case("add_scalar", "add_scalar", "add_scalar", [uni(-1, 1, 3, 4)], s0=1.5),
    case("mul_scalar", "mul_scalar", "mul_scalar", [uni_s(-1, 1, 3, 4)], s0=-2.5),
    # activations (include/nabla/nn.h); kinks at 0 avoided, and softplus's cut-over to x
    case("step", "step", "step", [away(-1, 1, 0, 3, 4)]),
    case("leaky_relu", "leaky_relu", "leaky_relu", [away(-1, 1, 0, 3, 4)], s0=0.1),
    case("leaky_relu_at_zero", "leaky_relu", "leaky_relu", [ints(-1, 1, 3, 4)], s0=0.1,
         nonsmooth=True),
    case("elu", "elu", "elu", [away(-2, 2, 0, 3, 4)], s0=0.5),
    case("softplus", "softplus", "softplus", [uni(-3, 3, 3, 4)], s0=1, s1=20),
    case("softplus_threshold", "softplus", "softplus", [away(-2, 3, 1, 3, 4)], s0=2, s1=2),
    case("silu", "silu", "silu", [uni(-3, 3, 3, 4)], s0=1),
    case("silu_beta", "silu", "silu", [uni_t(-3, 3, 3, 4)], s0=1.5),
    case("mish", "mish", "mish", [uni(-3, 3, 3, 4)]),
    case("gelu", "gelu", "gelu", [uni(-3, 3, 3, 4)]),
    case("atan", "atan", "atan", [uni(-3, 3, 3, 4)]),
    case("softsign", "softsign", "softsign", [away(-2, 2, 0, 3, 4)]),
    case("erf", "erf", "erf", [uni(-2.5, 2.5, 3, 4)]),
    # matmul: 2-D, transposed operands, batched, broadcast batch, 1-D operands
    case("matmul_2d", "matmul", "matmul", [uni(-1, 1, 3, 4), uni(-1, 1, 4, 2)]),
    case("matmul_transposed_operands", "matmul", "matmul",
         [uni_t(-1, 1, 3, 4), uni_t(-1, 1, 4, 5)]),
    case("matmul_batched", "matmul", "matmul", [uni(-1, 1, 2, 3, 4), uni(-1, 1, 2, 4, 2)]),
    case("matmul_batched_transposed", "matmul", "matmul",
         [uni_t(-1, 1, 2, 3, 4), uni_s(-1, 1, 2, 4, 2)]),
    case("matmul_batch_times_matrix", "matmul", "matmul", [uni(-1, 1, 2, 3, 4), uni(-1, 1, 4, 2)]),
    case("matmul_broadcast_batch", "matmul", "matmul",
         [uni(-1, 1, 2, 1, 2, 3), uni(-1, 1, 3, 3, 2)]),
    case("matmul_vector_matrix", "matmul", "matmul", [uni(-1, 1, 4), uni(-1, 1, 4, 3)]),
    case("matmul_matrix_vector", "matmul", "matmul", [uni(-1, 1, 3, 4), uni(-1, 1, 4)]),
    case("matmul_dot", "matmul", "matmul", [uni(-1, 1, 5), uni(-1, 1, 5)]),
    case("matmul_batched_vector", "matmul", "matmul", [uni(-1, 1, 2, 3, 4), uni(-1, 1, 4)]),
    # linear: with and without bias, a 3-D input, a transposed input
    case("linear_bias", "linear", "linear", [uni(-1, 1, 3, 4), uni(-1, 1, 5, 4), uni(-1, 1, 5)]),
    case("linear_no_bias", "linear", "linear", [uni(-1, 1, 3, 4), uni(-1, 1, 2, 4)]),
    case("linear_3d_input", "linear", "linear", [uni(-1, 1, 2, 3, 4), uni(-1, 1, 5, 4), uni(-1, 1, 5)]),
    case("linear_transposed_input", "linear", "linear",
         [uni_t(-1, 1, 3, 4), uni(-1, 1, 2, 4), uni(-1, 1, 2)]),
    # reductions: all dims, one dim, several, negative, keepdim on/off, non-contiguous
    case("sum_all", "sum", "sum", [uni(-1, 1, 2, 3, 4)]),
    case("sum_one_dim", "sum", "sum_dims", [uni(-1, 1, 2, 3, 4)], dims=[1]),
    case("sum_two_dims_keepdim", "sum", "sum_dims", [uni(-1, 1, 2, 3, 4)], dims=[0, 2],
         keepdim=True),
    case("sum_negative_dim", "sum", "sum_dims", [uni(-1, 1, 2, 3, 4)], dims=[-1]),
    case("sum_all_dims_keepdim", "sum", "sum_dims", [uni(-1, 1, 2, 3)], dims=[0, 1], keepdim=True),
    case("sum_scalar", "sum", "sum", [scalar(-1, 1)]),
    case("sum_transposed", "sum", "sum_dims", [uni_t(-1, 1, 3, 4)], dims=[0]),
    case("mean_all", "mean", "mean", [uni(-1, 1, 2, 3, 4)]),
    case("mean_negative_dim_keepdim", "mean", "mean_dims", [uni(-1, 1, 2, 3, 4)], dims=[-2],
         keepdim=True),
    case("mean_two_dims", "mean", "mean_dims", [uni_t(-1, 1, 2, 3, 4)], dims=[0, -1]),
    case("max_all", "max", "max", [distinct(2, 3, 4)]),
    case("max_one_dim", "max", "max_dims", [distinct(3, 5)], dims=[1]),
    case("max_two_dims_keepdim", "max", "max_dims", [distinct(2, 3, 4)], dims=[0, 2], keepdim=True),
    case("max_negative_dim_transposed", "max", "max_dims", [distinct_t(4, 3)], dims=[-1]),
    case("max_ties", "max", "max_dims", [ints(0, 2, 3, 4)], dims=[1], nonsmooth=True),
    case("min_all", "min", "min", [distinct(3, 4)]),
    case("min_negative_dim_keepdim", "min", "min_dims", [distinct(2, 3, 4)], dims=[-1],
         keepdim=True),
    case("min_two_dims", "min", "min_dims", [distinct(2, 3, 4)], dims=[0, 1]),
    case("min_ties", "min", "min_dims", [ints(0, 2, 4, 3)], dims=[0], nonsmooth=True),
    case("argmax_all", "argmax", "argmax", [distinct(3, 4)], dim=ALL),
    case("argmax_dim", "argmax", "argmax", [distinct(2, 3, 4)], dim=1),
    case("argmax_negative_dim_keepdim", "argmax", "argmax", [distinct_t(3, 4)], dim=-1,
         keepdim=True),
    case("argmax_ties_first", "argmax", "argmax", [ints(0, 1, 4, 5)], dim=1),
    # softmax family: last dim, first dim, a middle dim (inner > 1), 1-D, large logits
    case("softmax_last_dim", "softmax", "softmax", [uni(-2, 2, 3, 5)], dim=-1),
    case("softmax_first_dim", "softmax", "softmax", [uni(-2, 2, 4, 3)], dim=0),
    case("softmax_middle_dim", "softmax", "softmax", [uni(-2, 2, 2, 3, 4)], dim=1),
    case("softmax_transposed", "softmax", "softmax", [uni_t(-2, 2, 3, 4)], dim=1),
    case("softmax_scalar", "softmax", "softmax", [scalar(-2, 2)], dim=0),
    case("softmax_large_logits", "softmax", "softmax", [uni(90, 100, 2, 5)], dim=-1),
    case("log_softmax_last_dim", "log_softmax", "log_softmax", [uni(-2, 2, 3, 5)], dim=-1),
    case("log_softmax_middle_dim", "log_softmax", "log_softmax", [uni(-2, 2, 2, 3, 4)], dim=-2),
    case("log_softmax_1d", "log_softmax", "log_softmax", [uni(-2, 2, 6)], dim=0),
    case("log_softmax_large_logits", "log_softmax", "log_softmax", [uni(-100, -90, 2, 5)], dim=1),
    # views: everything that records RESHAPE, then permute, slice, expand, contiguous
    case("reshape", "reshape", "reshape", [uni(-1, 1, 2, 3, 4)], sizes=[4, 6]),
    case("reshape_infer", "reshape", "reshape", [uni(-1, 1, 2, 3, 4)], sizes=[3, -1, 2]),
    case("reshape_transposed_copies", "reshape", "reshape", [uni_t(-1, 1, 3, 4)], sizes=[12]),
    case("view", "reshape", "view", [uni(-1, 1, 2, 3, 4)], sizes=[6, 4]),
    case("flatten_inner", "reshape", "flatten", [uni(-1, 1, 2, 3, 4)], dims=[1, 2]),
    case("flatten_all", "reshape", "flatten", [uni(-1, 1, 2, 3, 4)], dims=[0, -1]),
    case("squeeze_dim", "reshape", "squeeze", [uni(-1, 1, 3, 1, 4)], dim=1),
    case("squeeze_size_not_one", "reshape", "squeeze", [uni(-1, 1, 3, 4)], dim=0),
    case("squeeze_all", "reshape", "squeeze", [uni(-1, 1, 1, 3, 1, 4)], dim=ALL),
    case("unsqueeze_front", "reshape", "unsqueeze", [uni(-1, 1, 3, 4)], dim=0),
    case("unsqueeze_negative", "reshape", "unsqueeze", [uni_t(-1, 1, 3, 4)], dim=-1),
    case("transpose", "permute", "transpose", [uni(-1, 1, 2, 3, 4)], dims=[0, 2]),
    case("transpose_negative", "permute", "transpose", [uni(-1, 1, 3, 4)], dims=[-1, -2]),
    case("permute", "permute", "permute", [uni(-1, 1, 2, 3, 4)], dims=[2, 0, 1]),
    case("permute_negative", "permute", "permute", [uni_t(-1, 1, 2, 3, 4)], dims=[-1, 0, 1]),
    case("slice_rows", "slice", "slice", [uni(-1, 1, 5, 4)], dim=0, start=1, end=4, step=1),
    case("slice_step", "slice", "slice", [uni(-1, 1, 3, 7)], dim=-1, start=0, end=7, step=2),
    case("slice_negative_start_clamped_end", "slice", "slice", [uni_t(-1, 1, 3, 6)], dim=1,
         start=-4, end=100, step=3),
    case("expand", "expand", "expand", [uni(-1, 1, 3, 1)], sizes=[2, 3, 4]),
    case("expand_keep_size", "expand", "expand", [uni(-1, 1, 1, 4)], sizes=[3, -1]),
    case("contiguous_transposed", "contiguous", "contiguous", [uni_t(-1, 1, 3, 4)]),
    case("contiguous_strided", "contiguous", "contiguous", [uni_s(-1, 1, 2, 3)]),
    # joining: concat and stack of three inputs (stack records CONCAT)
    case("concat_dim0", "concat", "concat",
         [uni(-1, 1, 2, 3), uni_t(-1, 1, 3, 3), uni(-1, 1, 1, 3)], dim=0),
    case("concat_last_dim", "concat", "concat",
         [uni(-1, 1, 2, 1), uni(-1, 1, 2, 3), uni_s(-1, 1, 2, 2)], dim=-1),
    case("stack_dim0", "concat", "stack", [uni(-1, 1, 2, 3), uni(-1, 1, 2, 3), uni_t(-1, 1, 2, 3)],
         dim=0),
    case("stack_last_dim", "concat", "stack",
         [uni(-1, 1, 2, 3), uni(-1, 1, 2, 3), uni(-1, 1, 2, 3)], dim=-1),
    # selection
    case("where", "where", "where", [mask(3, 4), uni(-1, 1, 3, 4), uni(-1, 1, 3, 4)]),
    case("where_broadcast", "where", "where", [mask(3, 1), uni(-1, 1, 4), uni_t(-1, 1, 3, 4)]),
    case("gather_dim0_repeated", "gather", "gather", [uni(-1, 1, 3, 4), index(3, 5, 4)], dim=0),
    # cross-entropy on class indices: the fused XENT row (repeated classes, a transposed input)
    case("cross_entropy_indices", "cross_entropy", "cross_entropy", [uni(-2, 2, 6, 5), index(5, 6)]),
    case("cross_entropy_transposed", "cross_entropy", "cross_entropy", [uni_t(-2, 2, 4, 3), index(3, 4)]),
    case("gather_dim1_repeated", "gather", "gather", [uni_t(-1, 1, 3, 4), index(4, 2, 6)], dim=1),
    case("gather_negative_dim_3d", "gather", "gather", [uni(-1, 1, 2, 3, 4), index(4, 2, 2, 5)],
         dim=-1),
    case("index_select_dim0_repeated", "index_select", "index_select",
         [uni(-1, 1, 4, 3), index(4, 6)], dim=0),
    case("index_select_last_dim_repeated", "index_select", "index_select",
         [uni_t(-1, 1, 2, 3, 4), index(4, 5)], dim=-1),
    # pooling (max: distinct values, so no window has a tie, except the nonsmooth cases that
    # pin torch's choice of the first maximal element) and upsampling
    case("max_pool2d_2x2", "max_pool2d", "max_pool2d", [distinct(1, 2, 4, 4)],
         pool={"kernel": [2, 2]}),
    case("max_pool2d_3x3_stride2_pad1", "max_pool2d", "max_pool2d", [distinct(1, 2, 5, 5)],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
    case("max_pool2d_ceil_mode", "max_pool2d", "max_pool2d", [distinct(1, 1, 5, 6)],
         pool={"kernel": [2, 2], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True}),
    case("max_pool2d_nonsquare", "max_pool2d", "max_pool2d", [distinct(2, 1, 4, 6)],
         pool={"kernel": [2, 3], "stride": [1, 2], "padding": [1, 1]}),
    case("max_pool2d_unbatched", "max_pool2d", "max_pool2d", [distinct(2, 4, 4)],
         pool={"kernel": [2, 2]}),
    case("max_pool2d_transposed", "max_pool2d", "max_pool2d", [distinct_t(1, 2, 4, 6)],
         pool={"kernel": [2, 2], "stride": [1, 2]}),
    case("max_pool2d_ties", "max_pool2d", "max_pool2d", [ints(0, 1, 1, 2, 4, 4)],
         pool={"kernel": [2, 2]}, nonsmooth=True),
    case("max_pool2d_ties_overlapping_padded", "max_pool2d", "max_pool2d",
         [ints(0, 2, 1, 1, 5, 5)], pool={"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]},
         nonsmooth=True),
    case("avg_pool2d_2x2", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 2, 2, 4, 4)],
         pool={"kernel": [2, 2]}),
    case("avg_pool2d_pad", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 1, 2, 5, 5)],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
    case("avg_pool2d_exclude_pad", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 1, 2, 5, 5)],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "exclude_pad": True}),
    case("avg_pool2d_ceil_mode", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 1, 1, 6, 6)],
         pool={"kernel": [3, 3], "stride": [2, 2], "ceil_mode": True}),
    case("avg_pool2d_ceil_mode_pad", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 1, 1, 6, 6)],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True}),
    case("avg_pool2d_ceil_mode_exclude_pad", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 1, 1, 6, 6)],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True,
               "exclude_pad": True}),
    case("avg_pool2d_unbatched_nonsquare", "avg_pool2d", "avg_pool2d", [uni(-1, 1, 2, 4, 5)],
         pool={"kernel": [2, 3], "stride": [1, 1], "padding": [1, 1]}),
    case("avg_pool2d_strided", "avg_pool2d", "avg_pool2d", [uni_s(-1, 1, 1, 2, 4, 4)],
         pool={"kernel": [2, 2]}),
    case("global_avg_pool2d", "mean", "global_avg_pool2d", [uni(-1, 1, 2, 3, 4, 4)]),
    case("global_avg_pool2d_unbatched_transposed", "mean", "global_avg_pool2d",
         [uni_t(-1, 1, 3, 4, 5)]),
    case("upsample_nearest2d_x2", "upsample_nearest2d", "upsample_nearest2d",
         [uni(-1, 1, 1, 2, 3, 3)], scale=(2, 2)),
    case("upsample_nearest2d_2x3", "upsample_nearest2d", "upsample_nearest2d",
         [uni(-1, 1, 2, 1, 3, 2)], scale=(2, 3)),
    case("upsample_nearest2d_unbatched_transposed", "upsample_nearest2d", "upsample_nearest2d",
         [uni_t(-1, 1, 2, 3, 4)], scale=(3, 1)),
    case("upsample_bilinear2d_x2", "upsample_bilinear2d", "upsample_bilinear2d",
         [uni(-1, 1, 1, 2, 3, 4)], scale=(2, 2)),
    case("upsample_bilinear2d_x2_align_corners", "upsample_bilinear2d", "upsample_bilinear2d",
         [uni(-1, 1, 1, 2, 3, 4)], scale=(2, 2), align_corners=True),
    case("upsample_bilinear2d_3x2_strided", "upsample_bilinear2d", "upsample_bilinear2d",
         [uni_s(-1, 1, 1, 1, 3, 3)], scale=(3, 2)),
    case("upsample_bilinear2d_3x2_align_corners", "upsample_bilinear2d", "upsample_bilinear2d",
         [uni_t(-1, 1, 1, 1, 3, 4)], scale=(3, 2), align_corners=True),
    # convolution: bias or not, stride, padding, 'same' (an odd total pads one more at the end),
    # dilation, groups, depthwise, 1x1 (no im2col), one unbatched sample, non-contiguous
    # inputs; the transposed conv with stride, padding, output_padding (also by dilation, past
    # the last tap), groups, dilation
    case("conv2d_bias", "conv2d", "conv2d",
         [uni(-1, 1, 2, 2, 5, 5), uni(-1, 1, 3, 2, 3, 3), uni(-1, 1, 3)]),
    case("conv2d_no_bias", "conv2d", "conv2d", [uni(-1, 1, 1, 3, 4, 5), uni(-1, 1, 2, 3, 2, 2)]),
    case("conv2d_stride2", "conv2d", "conv2d",
         [uni(-1, 1, 1, 2, 6, 7), uni(-1, 1, 2, 2, 3, 3), uni(-1, 1, 2)],
         conv={"stride": [2, 2]}),
    case("conv2d_padding1", "conv2d", "conv2d",
         [uni(-1, 1, 2, 1, 4, 4), uni(-1, 1, 2, 1, 3, 3), uni(-1, 1, 2)],
         conv={"padding": [1, 1]}),
    case("conv2d_asymmetric", "conv2d", "conv2d", [uni(-1, 1, 1, 2, 5, 6), uni(-1, 1, 2, 2, 2, 3)],
         conv={"stride": [1, 2], "padding": [2, 0]}),
    case("conv2d_same_even_kernel", "conv2d", "conv2d",
         [uni(-1, 1, 1, 2, 5, 6), uni(-1, 1, 2, 2, 3, 4), uni(-1, 1, 2)], conv={"same": True}),
    case("conv2d_same_dilated", "conv2d", "conv2d", [uni(-1, 1, 1, 2, 5, 5), uni(-1, 1, 2, 2, 3, 2)],
         conv={"same": True, "dilation": [2, 3]}),
    case("conv2d_dilation2", "conv2d", "conv2d",
         [uni(-1, 1, 1, 2, 7, 7), uni(-1, 1, 2, 2, 3, 3), uni(-1, 1, 2)],
         conv={"padding": [1, 1], "dilation": [2, 2]}),
    case("conv2d_groups2", "conv2d", "conv2d",
         [uni(-1, 1, 1, 4, 5, 5), uni(-1, 1, 6, 2, 3, 3), uni(-1, 1, 6)], conv={"groups": 2}),
    case("conv2d_depthwise", "conv2d", "conv2d",
         [uni(-1, 1, 2, 3, 5, 5), uni(-1, 1, 3, 1, 3, 3), uni(-1, 1, 3)],
         conv={"padding": [1, 1], "groups": 3}),
    case("conv2d_1x1", "conv2d", "conv2d",
         [uni(-1, 1, 2, 3, 4, 4), uni(-1, 1, 5, 3, 1, 1), uni(-1, 1, 5)]),
    case("conv2d_1x1_strided_input", "conv2d", "conv2d",
         [uni_s(-1, 1, 1, 3, 3, 4), uni(-1, 1, 2, 3, 1, 1)]),
    case("conv2d_unbatched", "conv2d", "conv2d",
         [uni(-1, 1, 2, 5, 5), uni(-1, 1, 3, 2, 3, 3), uni(-1, 1, 3)]),
    case("conv2d_transposed_input", "conv2d", "conv2d",
         [uni_t(-1, 1, 1, 2, 5, 6), uni(-1, 1, 2, 2, 3, 3)],
         conv={"stride": [2, 1], "padding": [1, 1]}),
    case("conv_transpose2d_bias", "conv_transpose2d", "conv_transpose2d",
         [uni(-1, 1, 2, 2, 3, 3), uni(-1, 1, 2, 3, 3, 3), uni(-1, 1, 3)]),
    case("conv_transpose2d_stride2", "conv_transpose2d", "conv_transpose2d",
         [uni(-1, 1, 1, 2, 3, 3), uni(-1, 1, 2, 2, 3, 3), uni(-1, 1, 2)],
         conv_t={"stride": [2, 2]}),
    case("conv_transpose2d_padding", "conv_transpose2d", "conv_transpose2d",
         [uni(-1, 1, 1, 2, 4, 4), uni(-1, 1, 2, 2, 3, 3)],
         conv_t={"stride": [2, 2], "padding": [1, 1]}),
    case("conv_transpose2d_output_padding", "conv_transpose2d", "conv_transpose2d",
         [uni(-1, 1, 1, 2, 3, 4), uni(-1, 1, 2, 2, 3, 3), uni(-1, 1, 2)],
         conv_t={"stride": [2, 3], "padding": [1, 0], "output_padding": [1, 2]}),
    case("conv_transpose2d_groups", "conv_transpose2d", "conv_transpose2d",
         [uni(-1, 1, 1, 4, 3, 3), uni(-1, 1, 4, 2, 2, 2), uni(-1, 1, 4)],
         conv_t={"groups": 2}),
    case("conv_transpose2d_dilation", "conv_transpose2d", "conv_transpose2d",
         [uni(-1, 1, 1, 2, 3, 3), uni(-1, 1, 2, 2, 3, 3)],
         conv_t={"output_padding": [1, 0], "dilation": [2, 2]}),
    case("conv_transpose2d_unbatched_transposed", "conv_transpose2d", "conv_transpose2d",
         [uni_t(-1, 1, 2, 3, 4), uni(-1, 1, 2, 3, 2, 2)], conv_t={"stride": [1, 2]}),
    # the ops made for backwards: sizes is the shape of the forward's input (of the weight for
    # conv2d_weight)
    case("slice_backward_rows", "slice_backward", "slice_backward", [uni(-1, 1, 3, 4)],
         sizes=[5, 4], dim=0, start=1, end=4, step=1),
    case("slice_backward_step_strided", "slice_backward", "slice_backward", [uni_s(-1, 1, 3, 3)],
         sizes=[3, 7], dim=1, start=0, end=7, step=3),
    case("scatter_add_dim0_repeated", "scatter_add", "scatter_add",
         [uni(-1, 1, 4, 3), index(3, 4, 3)], sizes=[3, 4], dim=0),
    case("scatter_add_dim1_transposed", "scatter_add", "scatter_add",
         [uni_t(-1, 1, 3, 5), index(2, 3, 5)], sizes=[4, 2], dim=1),
    case("index_add_dim0_repeated", "index_add", "index_add", [uni(-1, 1, 5, 3), index(4, 5)],
         sizes=[4, 3], dim=0),
    case("index_add_last_dim_transposed", "index_add", "index_add",
         [uni_t(-1, 1, 2, 3, 4), index(3, 4)], sizes=[2, 3, 3], dim=2),
    case("avg_pool2d_backward_pad", "avg_pool2d_backward", "avg_pool2d_backward",
         [uni(-1, 1, 1, 2, 3, 3)], sizes=[1, 2, 5, 5],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
    case("avg_pool2d_backward_ceil_mode_exclude_pad", "avg_pool2d_backward",
         "avg_pool2d_backward", [uni_s(-1, 1, 1, 1, 4, 4)], sizes=[1, 1, 6, 6],
         pool={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True,
               "exclude_pad": True}),
    case("upsample_nearest2d_backward_2x3", "upsample_nearest2d_backward",
         "upsample_nearest2d_backward", [uni(-1, 1, 2, 1, 6, 6)], sizes=[2, 1, 3, 2],
         scale=[2, 3]),
    case("upsample_bilinear2d_backward_x2", "upsample_bilinear2d_backward",
         "upsample_bilinear2d_backward", [uni(-1, 1, 1, 2, 6, 8)], sizes=[1, 2, 3, 4],
         scale=[2, 2]),
    case("upsample_bilinear2d_backward_3x2_align_corners", "upsample_bilinear2d_backward",
         "upsample_bilinear2d_backward", [uni_t(-1, 1, 3, 9, 8)], sizes=[3, 3, 4],
         scale=[3, 2], align_corners=True),
    case("conv2d_weight_stride2", "conv2d_weight", "conv2d_weight",
         [uni(-1, 1, 1, 2, 6, 7), uni(-1, 1, 1, 2, 2, 3)], sizes=[2, 2, 3, 3],
         conv={"stride": [2, 2]}),
    case("conv2d_weight_groups_dilated_padded", "conv2d_weight", "conv2d_weight",
         [uni(-1, 1, 2, 4, 5, 5), uni_t(-1, 1, 2, 6, 3, 3)], sizes=[6, 2, 3, 3],
         conv={"padding": [1, 1], "dilation": [2, 2], "groups": 2}),
    # backward_hook: one tensor (the identity, a view), several of any layout (a copy)
    case("backward_hook_one", "backward_hook", "backward_hook", [uni_t(-1, 1, 3, 4)]),
    # fake quantization: start, end = quant_min, quant_max; dim = the axis; step = the
    # estimator (1: plain); s0 = grad_factor (see op_cases.h for the ranges)
    case("fake_quantize_per_tensor", "fake_quantize_per_tensor_affine", "fake_quantize_per_tensor",
         [away2(-12, 30, -7, 25, 3, 4), fixed(2, 2, 1), fixed(3, 3, 1)], start=0, end=15),
    case("fake_quantize_per_tensor_plain_ste", "fake_quantize_per_tensor_affine",
         "fake_quantize_per_tensor", [uni(-12, 30, 3, 4), fixed(2, 2, 1), fixed(3, 3, 1)],
         start=0, end=15, step=1),
    case("fake_quantize_per_tensor_signed_wide", "fake_quantize_per_tensor_affine",
         "fake_quantize_per_tensor", [uni_t(-30, 30, 3, 4), fixed(3, 3, 1), fixed(-1, -1, 1)],
         start=-8, end=7, nonsmooth=True),
    case("fake_quantize_per_channel", "fake_quantize_per_channel_affine",
         "fake_quantize_per_channel", [uni(-2, 12, 2, 3, 4), fixed(1, 2, 3), fixed(2, 3, 3)],
         dim=1, start=0, end=15),
    case("fake_quantize_per_channel_wide_last_axis", "fake_quantize_per_channel_affine",
         "fake_quantize_per_channel", [uni_s(-40, 40, 3, 4), fixed(1, 3, 4), fixed(-2, 2, 4)],
         dim=-1, start=-8, end=7, nonsmooth=True),
    case("fake_quantize_learnable_per_tensor_inside", "fake_quantize_learnable_per_tensor_affine",
         "fake_quantize_learnable_per_tensor",
         [uni(-0.2, 0.2, 3, 4), uni(0.9, 1.1, 1), uni(2.1, 2.4, 1)], start=0, end=15, s0=1),
    case("fake_quantize_learnable_per_tensor_outside", "fake_quantize_learnable_per_tensor_affine",
         "fake_quantize_learnable_per_tensor",
         [uni(20, 30, 3, 4), uni(0.9, 1.1, 1), uni(2.1, 2.4, 1)], start=0, end=15, s0=0.5),
    case("fake_quantize_learnable_per_tensor_wide", "fake_quantize_learnable_per_tensor_affine",
         "fake_quantize_learnable_per_tensor",
         [uni_t(-3, 3, 3, 4), uni(0.2, 0.3, 1), uni(-1.4, -0.6, 1)], start=-8, end=7, s0=0.25,
         nonsmooth=True),
    case("fake_quantize_learnable_per_channel_inside",
         "fake_quantize_learnable_per_channel_affine", "fake_quantize_learnable_per_channel",
         [uni(-0.2, 0.2, 2, 3, 2), uni(0.9, 1.1, 3), uni(2.1, 2.4, 3)], dim=1, start=0, end=15,
         s0=1),
    case("fake_quantize_learnable_per_channel_outside",
         "fake_quantize_learnable_per_channel_affine", "fake_quantize_learnable_per_channel",
         [uni(-30, -20, 4, 3), uni(0.9, 1.1, 3), uni(2.1, 2.4, 3)], dim=-1, start=0, end=15,
         s0=2),
    case("fake_quantize_learnable_per_channel_wide",
         "fake_quantize_learnable_per_channel_affine", "fake_quantize_learnable_per_channel",
         [uni_s(-3, 3, 4, 3), uni(0.2, 0.4, 4), uni(-2.6, 3.4, 4)], dim=0, start=-8, end=7,
         s0=0.5, nonsmooth=True),
    case("backward_hook_three", "backward_hook", "backward_hook",
         [uni_t(-1, 1, 3, 4), scalar(-1, 1), uni_s(-1, 1, 2, 3)]),
    case("bspline_basis_cubic", "bspline_basis", "bspline_basis",
         [uni(-1.2, 1.2, 5, 2), grid(-1.6, 1.6, 2, 10)], dim=3),
    case("bspline_basis_outside_grid", "bspline_basis", "bspline_basis",
         [uni_s(-2.5, 2.5, 4, 3), grid(-1.5, 1.5, 3, 9)], dim=3),
    case("bspline_basis_derivative", "bspline_basis", "bspline_basis",
         [uni_t(-1, 1, 4, 2), grid(-2.5, 2.5, 2, 13)], dim=5, start=1),
    # layer norm over the last dim (dim) dims, eps s0; keepdim: the second input is the bias
    case("layer_norm_affine", "layer_norm", "layer_norm",
         [uni(-2, 2, 2, 3, 5), uni(0.5, 1.5, 5), uni(-1, 1, 5)], dim=1, s0=1e-5),
    case("layer_norm_two_dims_strided", "layer_norm", "layer_norm",
         [uni_s(-2, 2, 3, 2, 4), uni(0.5, 1.5, 2, 4), uni(-1, 1, 2, 4)], dim=2, s0=1e-5),
    case("layer_norm_plain_transposed", "layer_norm", "layer_norm", [uni_t(-1, 1, 4, 3)], dim=1,
         s0=0.1),
    case("layer_norm_weight_one_row", "layer_norm", "layer_norm",
         [uni(-1, 1, 6), uni(0.5, 1.5, 6)], dim=1, s0=1e-5),
    case("layer_norm_bias_only", "layer_norm", "layer_norm", [uni(-1, 1, 3, 4), uni(-1, 1, 4)],
         dim=1, s0=1e-3, keepdim=True),
    # scaled dot-product attention (keepdim: causal; s0: the scale, 0 for 1/sqrt(D))
    case("sdpa", "scaled_dot_product_attention", "scaled_dot_product_attention",
         [uni(-1, 1, 2, 2, 3, 4), uni(-1, 1, 2, 2, 5, 4), uni(-1, 1, 2, 2, 5, 3)]),
    case("sdpa_causal_scaled_transposed", "scaled_dot_product_attention",
         "scaled_dot_product_attention",
         [uni_t(-1, 1, 1, 2, 4, 3), uni(-1, 1, 1, 2, 4, 3), uni_s(-1, 1, 1, 2, 4, 2)],
         keepdim=True, s0=0.5),
    case("rnn_tanh_layer", "rnn_tanh_layer", "rnn_tanh_layer",
         [uni(-1, 1, 3, 2, 3), uni(-1, 1, 3, 3), uni(-1, 1, 3), uni(-1, 1, 1, 2, 3)]),
    case("rnn_relu_layer_reverse_mask", "rnn_relu_layer", "rnn_relu_layer",
         [uni(-1, 1, 4, 2, 3), uni_t(-1, 1, 3, 3), uni(-1, 1, 3), uni(-1, 1, 1, 2, 3),
          mask(4, 2)], keepdim=True),
    case("lstm_layer", "lstm_layer", "lstm_layer",
         [uni(-1, 1, 3, 2, 8), uni(-1, 1, 8, 2), uni(-1, 1, 8), uni(-1, 1, 2, 2, 2)]),
    case("lstm_layer_reverse_strided", "lstm_layer", "lstm_layer",
         [uni(-1, 1, 4, 1, 12), uni_t(-1, 1, 12, 3), uni(-1, 1, 12), uni_s(-1, 1, 2, 1, 3)],
         keepdim=True),
    case("lstm_layer_mask", "lstm_layer", "lstm_layer",
         [uni(-1, 1, 4, 3, 8), uni(-1, 1, 8, 2), uni(-1, 1, 8), uni(-1, 1, 2, 3, 2), mask(4, 3)]),
    case("gru_layer", "gru_layer", "gru_layer",
         [uni(-1, 1, 3, 2, 6), uni(-1, 1, 6, 2), uni(-1, 1, 6), uni(-1, 1, 1, 2, 2)]),
    case("gru_layer_reverse_strided_mask", "gru_layer", "gru_layer",
         [uni(-1, 1, 4, 3, 9), uni_t(-1, 1, 9, 3), uni(-1, 1, 9), uni_s(-1, 1, 1, 3, 3),
          mask(4, 3)], keepdim=True),
]


# ---- the functions, as torch spells them

def all_dims(x, a):
    return a["dims"] if a["dims"] else list(range(x.dim()))


def slice_of(x, a):
    at = [slice(None)] * x[0].dim()
    at[a["dim"]] = slice(a["start"], a["end"], a["step"])
    return x[0][tuple(at)]


def bound(v):
    return None if math.isinf(v) else v


def pool2d(f, x, a, **kw):
    """F.max_pool2d / F.avg_pool2d with nb_pool2d_opts' conventions (a zero stride is the
    kernel size)."""
    p = a["pool"]
    stride = [s or k for s, k in zip(p["stride"], p["kernel"])]
    return f(x[0], p["kernel"], stride, p["padding"], ceil_mode=p["ceil_mode"], **kw)


def interpolate(x, a, **kw):
    """F.interpolate by the scale factors as given (torch passes them on to the kernel, which
    then uses 1 / scale as its ratio); a 3-D input is one sample [C, H, W], as nabla reads it."""
    x4 = x[0] if x[0].dim() == 4 else x[0].unsqueeze(0)
    y = F.interpolate(x4, scale_factor=[float(s) for s in a["scale"]], **kw)
    return y if x[0].dim() == 4 else y.squeeze(0)


def ones(v):
    """nabla's conv options: 0 means 1 (stride, dilation, groups)."""
    return [k or 1 for k in v] if isinstance(v, list) else v or 1


def conv2d(x, a):
    c = a["conv"]
    return F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=ones(c["stride"]),
                    padding="same" if c["same"] else c["padding"], dilation=ones(c["dilation"]),
                    groups=ones(c["groups"]))


def conv_transpose2d(x, a):
    c = a["conv_t"]
    return F.conv_transpose2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=ones(c["stride"]),
                              padding=c["padding"], output_padding=c["output_padding"],
                              groups=ones(c["groups"]), dilation=ones(c["dilation"]))


def sdpa(x, a):
    """torch 2's F.scaled_dot_product_attention(q, k, v, is_causal=keepdim, scale=s0 or
    1/sqrt(D)), written out for torch 1.13."""
    q, k, v = x
    scores = q @ k.transpose(-1, -2) * (f32(a["s0"]) or q.shape[-1] ** -0.5)
    if a["keepdim"]:
        hidden = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(hidden, -math.inf)
    return torch.softmax(scores, -1) @ v


def layer_norm(x, a):
    """F.layer_norm over the last a["dim"] dims with eps s0 (rounded to float32, as nabla takes
    it); the inputs after x are the weight and the bias, or the bias alone when keepdim.  A
    missing weight is passed as ones (the same function): torch 1.13's double backward of
    layer_norm fails without one."""
    shape = x[0].shape[x[0].dim() - a["dim"]:]
    w = x[1] if len(x) == 3 or (len(x) == 2 and not a["keepdim"]) else None
    b = x[2] if len(x) == 3 else x[1] if len(x) == 2 and a["keepdim"] else None
    if w is None:
        w = torch.ones(shape, dtype=torch.float64)
    return F.layer_norm(x[0], shape, w, b, f32(a["s0"]))


def rnn_layer(cell):
    """nabla's fused recurrent layer-direction (ops/rnn.c) with torch's cells (RNNCell, LSTMCell,
    GRUCell: hp = h w_hh^T + b_hh; LSTM gates = xp_t + hp in the order i f g o; GRU gates r z n):
    each step's h, then the final states (h_n, and c_n for an LSTM), stacked.  A fifth input is
    the mask [T, B]: where it is 0 the row skips the step (output 0, states kept)."""
    def run(x, a):
        xp, w, b, s0 = x[:4]
        m = x[4] if len(x) > 4 else torch.ones(xp.shape[:2], dtype=xp.dtype)
        h, c = s0[0], s0[1] if cell == "lstm" else None
        outs = [None] * xp.shape[0]
        for t in (reversed(range(xp.shape[0])) if a["keepdim"] else range(xp.shape[0])):
            hp = h @ w.t() + b
            if cell in ("tanh", "relu"):
                h2 = (torch.tanh if cell == "tanh" else torch.relu)(xp[t] + hp)
            elif cell == "lstm":
                i, f, g, o = (xp[t] + hp).chunk(4, 1)
                c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h2 = torch.sigmoid(o) * torch.tanh(c2)
                c = torch.where(m[t, :, None] != 0, c2, c)
            else:
                xr, xz, xn = xp[t].chunk(3, 1)
                hr, hz, hn = hp.chunk(3, 1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h2 = (h - n) * z + n
            outs[t] = h2 * m[t, :, None]
            h = torch.where(m[t, :, None] != 0, h2, h)
        return torch.stack(outs + ([h, c] if cell == "lstm" else [h]))
    return run


def input_grad(f, x, a):
    """The ops made for backwards: the gradient, for output gradient x[0], of f's input of
    shape a["sizes"] (as torch's own backward computes it, with create_graph so that it is
    differentiable in x[0] again)."""
    z = torch.zeros(a["sizes"], dtype=torch.float64, requires_grad=True)
    return torch.autograd.grad(f([z], a), z, x[0], create_graph=True)[0]


def conv2d_weight(x, a):
    """The gradient of conv2d's weight (of shape a["sizes"]) for input x[0] and output gradient
    x[1]."""
    w = torch.zeros(a["sizes"], dtype=torch.float64, requires_grad=True)
    return torch.autograd.grad(conv2d([x[0], w], a), w, x[1], create_graph=True)[0]


def fake_quantize(x, a, per_channel):
    """torch's fake_quantize_per_tensor_affine / _per_channel_affine (clipped estimator); the
    plain estimator (step 1) is x plus the detached quantization error, whose gradient is g."""
    if per_channel:
        y = torch.fake_quantize_per_channel_affine(x[0], x[1].float(), x[2].int(),
                                                   a["dim"] % x[0].dim(),
                                                   a["start"], a["end"])
    else:
        y = torch.fake_quantize_per_tensor_affine(x[0], float(x[1]), int(x[2]), a["start"],
                                                  a["end"])
    return x[0] + (y - x[0]).detach() if a["step"] == 1 else y


class LearnableFakeQuantize(torch.autograd.Function):
    """torch._fake_quantize_learnable_per_{tensor,channel}_affine: the forward is torch's (in
    float32), the backward torch's kernel written with differentiable ops (torch's own has no
    second derivative), in the order of nabla's ops/quant.c; check_learnable below holds it to
    torch's float32 gradients."""

    @staticmethod
    def forward(ctx, x, scale, zp, a, per_channel):
        ctx.save_for_backward(x, scale, zp)
        ctx.a, ctx.per_channel = a, per_channel
        if per_channel:
            y = torch._fake_quantize_learnable_per_channel_affine(
                x.float(), scale.float(), zp.float(), a["dim"] % x.dim(), a["start"], a["end"],
                f32(a["s0"]))
        else:
            y = torch._fake_quantize_learnable_per_tensor_affine(
                x.float(), scale.float(), zp.float(), a["start"], a["end"], f32(a["s0"]))
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, scale, zp = ctx.saved_tensors
        a, qmin, qmax = ctx.a, ctx.a["start"], ctx.a["end"]
        axis = a["dim"] % x.dim()
        shape = [scale.numel() if d == axis else 1 for d in range(x.dim())] if ctx.per_channel else []
        # the codes as torch's backward kernels compute them, in float32
        if ctx.per_channel:
            z = zp.float().round().clamp(qmin, qmax)
        else:
            z = torch.trunc((zp.float() + 0.5).clamp(qmin, qmax))
        z = z.reshape(shape)
        q = torch.round(z + x.detach().float() * (1.0 / scale.detach().float().reshape(shape)))
        m = ((q >= qmin) & (q <= qmax)).to(x.dtype)
        k = (q.clamp(qmin, qmax) - z).to(x.dtype)
        s = scale.reshape(shape)
        gf = f32(a["s0"])
        ds = (g * (m * (k * s - x)) / s + g * ((1 - m) * k)) * gf
        dz = g * (m - 1) * s * gf
        dims = [d for d in range(x.dim()) if not ctx.per_channel or d != axis]
        return (g * m, ds.sum(dims).reshape(scale.shape), dz.sum(dims).reshape(zp.shape), None,
                None)


def check_learnable(c, xs):
    """The reference's gradients against torch's float32 kernel, on one case's inputs."""
    per_channel = c["fn"].endswith("channel")
    ours = [t.detach().clone().requires_grad_(True) for t in xs]
    theirs = [t.detach().float().requires_grad_(True) for t in xs]
    out = LearnableFakeQuantize.apply(*ours, c["args"], per_channel)
    a = c["args"]
    if per_channel:
        ref = torch._fake_quantize_learnable_per_channel_affine(
            *theirs, a["dim"] % xs[0].dim(), a["start"], a["end"], f32(a["s0"]))
    else:
        ref = torch._fake_quantize_learnable_per_tensor_affine(*theirs, a["start"], a["end"],
                                                               f32(a["s0"]))
    r = torch.rand(out.shape, dtype=torch.float64)
    (out * r).sum().backward()
    (ref * r.float()).sum().backward()
    for o, t in zip(ours, theirs):
        if not torch.allclose(o.grad, t.grad.double(), rtol=1e-5, atol=1e-5):
            sys.exit("gen_golden.py: %s: the learnable reference differs from torch: %s vs %s"
                     % (c["name"], o.grad, t.grad))


FNS = {
    "add": lambda x, a: x[0] + x[1],
    "sub": lambda x, a: x[0] - x[1],
    "mul": lambda x, a: x[0] * x[1],
    "div": lambda x, a: x[0] / x[1],
    "pow": lambda x, a: torch.pow(x[0], x[1]),
    "eq": lambda x, a: x[0] == x[1],
    "ne": lambda x, a: x[0] != x[1],
    "lt": lambda x, a: x[0] < x[1],
    "le": lambda x, a: x[0] <= x[1],
    "gt": lambda x, a: x[0] > x[1],
    "ge": lambda x, a: x[0] >= x[1],
    "neg": lambda x, a: -x[0],
    "exp": lambda x, a: torch.exp(x[0]),
    "log": lambda x, a: torch.log(x[0]),
    "sqrt": lambda x, a: torch.sqrt(x[0]),
    "abs": lambda x, a: torch.abs(x[0]),
    "sin": lambda x, a: torch.sin(x[0]),
    "cos": lambda x, a: torch.cos(x[0]),
    "tanh": lambda x, a: torch.tanh(x[0]),
    "sigmoid": lambda x, a: torch.sigmoid(x[0]),
    "relu": lambda x, a: torch.relu(x[0]),
    "pow_scalar": lambda x, a: x[0] ** a["s0"],
    "clamp": lambda x, a: torch.clamp(x[0], min=bound(a["s0"]), max=bound(a["s1"])),
    "add_scalar": lambda x, a: x[0] + a["s0"],
    "mul_scalar": lambda x, a: x[0] * a["s0"],
    # torch.heaviside has no derivative; nabla's step is [x > 0] with a zero gradient
    "step": lambda x, a: (x[0] > 0).double() + 0 * x[0],
    "leaky_relu": lambda x, a: F.leaky_relu(x[0], a["s0"]),
    "elu": lambda x, a: F.elu(x[0], a["s0"]),
    "softplus": lambda x, a: F.softplus(x[0], a["s0"], a["s1"]),
    # torch's silu has no beta: nabla's silu(x, b) = x sigmoid(b x)
    "silu": lambda x, a: x[0] * torch.sigmoid(a["s0"] * x[0]),
    "mish": lambda x, a: F.mish(x[0]),
    "gelu": lambda x, a: F.gelu(x[0]),
    "atan": lambda x, a: torch.atan(x[0]),
    "softsign": lambda x, a: F.softsign(x[0]),
    "erf": lambda x, a: torch.erf(x[0]),
    "matmul": lambda x, a: torch.matmul(x[0], x[1]),
    "linear": lambda x, a: F.linear(x[0], x[1], x[2] if len(x) > 2 else None),
    "sum": lambda x, a: x[0].sum(),
    "mean": lambda x, a: x[0].mean(),
    "max": lambda x, a: x[0].amax(dim=all_dims(x[0], a)),
    "min": lambda x, a: x[0].amin(dim=all_dims(x[0], a)),
    "sum_dims": lambda x, a: x[0].sum(dim=all_dims(x[0], a), keepdim=a["keepdim"]),
    "mean_dims": lambda x, a: x[0].mean(dim=all_dims(x[0], a), keepdim=a["keepdim"]),
    "max_dims": lambda x, a: x[0].amax(dim=all_dims(x[0], a), keepdim=a["keepdim"]),
    "min_dims": lambda x, a: x[0].amin(dim=all_dims(x[0], a), keepdim=a["keepdim"]),
    "argmax": lambda x, a: (torch.argmax(x[0]) if a["dim"] == ALL
                            else torch.argmax(x[0], a["dim"], a["keepdim"])),
    "softmax": lambda x, a: torch.softmax(x[0], a["dim"]),
    "log_softmax": lambda x, a: torch.log_softmax(x[0], a["dim"]),
    "reshape": lambda x, a: x[0].reshape(a["sizes"]),
    "view": lambda x, a: x[0].view(a["sizes"]),
    "flatten": lambda x, a: torch.flatten(x[0], a["dims"][0], a["dims"][1]),
    "squeeze": lambda x, a: x[0].squeeze() if a["dim"] == ALL else x[0].squeeze(a["dim"]),
    "unsqueeze": lambda x, a: x[0].unsqueeze(a["dim"]),
    "transpose": lambda x, a: x[0].transpose(a["dims"][0], a["dims"][1]),
    "permute": lambda x, a: x[0].permute(a["dims"]),
    "slice": slice_of,
    "expand": lambda x, a: x[0].expand(a["sizes"]),
    "contiguous": lambda x, a: x[0].contiguous(),
    "concat": lambda x, a: torch.cat(x, a["dim"]),
    "stack": lambda x, a: torch.stack(x, a["dim"]),
    "where": lambda x, a: torch.where(x[0] != 0, x[1], x[2]),
    "gather": lambda x, a: torch.gather(x[0], a["dim"], x[1]),
    "cross_entropy": lambda x, a: F.cross_entropy(x[0], x[1].long()),
    "index_select": lambda x, a: torch.index_select(x[0], a["dim"], x[1]),
    "max_pool2d": lambda x, a: pool2d(F.max_pool2d, x, a),
    "avg_pool2d": lambda x, a: pool2d(F.avg_pool2d, x, a,
                                      count_include_pad=not a["pool"]["exclude_pad"]),
    "global_avg_pool2d": lambda x, a: F.adaptive_avg_pool2d(x[0], 1),
    "upsample_nearest2d": lambda x, a: interpolate(x, a, mode="nearest"),
    "upsample_bilinear2d": lambda x, a: interpolate(x, a, mode="bilinear",
                                                    align_corners=a["align_corners"]),
    "conv2d": conv2d,
    "conv_transpose2d": conv_transpose2d,
    "slice_backward": lambda x, a: input_grad(slice_of, x, a),
    "scatter_add": lambda x, a: torch.zeros(a["sizes"], dtype=torch.float64).scatter_add(
        a["dim"], x[1], x[0]),
    "index_add": lambda x, a: torch.zeros(a["sizes"], dtype=torch.float64).index_add(
        a["dim"], x[1], x[0]),
    "avg_pool2d_backward": lambda x, a: input_grad(
        lambda z, a: pool2d(F.avg_pool2d, z, a, count_include_pad=not a["pool"]["exclude_pad"]),
        x, a),
    "upsample_nearest2d_backward": lambda x, a: input_grad(
        lambda z, a: interpolate(z, a, mode="nearest"), x, a),
    "upsample_bilinear2d_backward": lambda x, a: input_grad(
        lambda z, a: interpolate(z, a, mode="bilinear", align_corners=a["align_corners"]), x, a),
    "conv2d_weight": conv2d_weight,
    # torch's BackwardHookFunction is an identity over its tensors; nabla's packs several flat
    "fake_quantize_per_tensor": lambda x, a: fake_quantize(x, a, False),
    "fake_quantize_per_channel": lambda x, a: fake_quantize(x, a, True),
    "fake_quantize_learnable_per_tensor": lambda x, a: LearnableFakeQuantize.apply(
        x[0], x[1], x[2], a, False),
    "fake_quantize_learnable_per_channel": lambda x, a: LearnableFakeQuantize.apply(
        x[0], x[1], x[2], a, True),
    "bspline_basis": lambda x, a: kan_torch.bspline(x[0], x[1], a["dim"], a["start"]),
    "backward_hook": lambda x, a: (x[0].clone() if len(x) == 1
                                   else torch.cat([t.reshape(-1) for t in x])),
    "layer_norm": layer_norm,
    "scaled_dot_product_attention": sdpa,
    "rnn_tanh_layer": rnn_layer("tanh"),
    "rnn_relu_layer": rnn_layer("relu"),
    "lstm_layer": rnn_layer("lstm"),
    "gru_layer": rnn_layer("gru"),
}
FORWARD_ONLY = {"eq", "ne", "lt", "le", "gt", "ge", "argmax"}


# ---- drawing (the semantics of oc_draw_values / oc_value_ok, not their exact numbers)

def value_ok(s, v):
    lo, hi = f32(s["lo"]), f32(s["hi"])
    if s["draw"] in ("uniform", "distinct"):
        return lo <= v <= hi and all(abs(f32(v - f32(p))) >= f32(MARGIN) for p in s["avoid"])
    if s["draw"] in ("ints", "fixed"):
        return lo <= v <= hi and v == math.floor(v)
    if s["draw"] == "mask":
        return v in (0.0, 1.0)
    if s["draw"] == "grid":
        return lo <= v <= hi
    return 0 <= v < hi and v == math.floor(v)


def draw_values(s, gen):
    n = math.prod(s["shape"])
    if s["draw"] == "distinct":
        perm = torch.randperm(n, generator=gen).tolist()
        return [f32(s["lo"] + (s["hi"] - s["lo"]) * (k + 0.5) / n) for k in perm]
    if s["draw"] == "grid":
        m = s["shape"][-1]
        return [f32(s["lo"] + (s["hi"] - s["lo"]) * (i % m) / (m - 1)) for i in range(n)]
    values = []
    for _ in range(n):
        while True:
            u = torch.rand((), generator=gen, dtype=torch.float64).item()
            if s["draw"] == "uniform":
                v = f32(s["lo"] + (s["hi"] - s["lo"]) * u)
            elif s["draw"] in ("ints", "fixed"):
                v = float(s["lo"] + math.floor(u * (s["hi"] - s["lo"] + 1)))
            elif s["draw"] == "mask":
                v = 0.0 if u < 0.5 else 1.0
            else:
                v = float(math.floor(u * s["hi"]))
            if value_ok(s, v):
                break
        values.append(v)
    return values


def seed_of(name):
    """FNV-1a of the name, as test_gradcheck.c seeds its cases."""
    h = 0xcbf29ce484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001b3) % (1 << 64)
    return h % (1 << 63)


# ---- output

def num(v):
    """A JSON number with 9 significant digits (round-trips float32); infinities as strings."""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    r = float("%.9g" % v)
    return int(r) if r == int(r) and abs(r) < 1e15 else r


def flat(t):
    return [num(float(v)) for v in t.detach().double().reshape(-1).tolist()]


def run(c):
    gen = torch.Generator().manual_seed(seed_of(c["name"]))
    inputs, xs, leaves = [], [], []
    for s in c["inputs"]:
        values = draw_values(s, gen)
        t = torch.tensor(values, dtype=torch.float64).reshape(s["shape"])
        if s["draw"] == "index":
            t = t.long()
        elif s["draw"] not in ("mask", "fixed", "grid") and c["op"] not in FORWARD_ONLY:
            t.requires_grad_(True)
        leaves.append(t)
        xs.append(t)
        inputs.append({"draw": s["draw"], "layout": s["layout"], "shape": s["shape"],
                       "values": [num(v) for v in values]})
    if c["fn"].startswith("fake_quantize_learnable"):
        check_learnable(c, xs)
    out = FNS[c["fn"]](xs, c["args"])
    r = torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 1
    r = torch.tensor([f32(v) for v in r.reshape(-1).tolist()], dtype=torch.float64)
    r = r.reshape(out.shape)
    grads = [None] * len(leaves)
    if c["op"] not in FORWARD_ONLY:
        (out * r).sum().backward()
        grads = [flat(t.grad) if t.requires_grad else None for t in leaves]
    args = dict(c["args"], s0=num(f32(c["args"]["s0"])), s1=num(f32(c["args"]["s1"])))
    return {"name": c["name"], "op": c["op"], "fn": c["fn"], "nonsmooth": c["nonsmooth"],
            "args": args, "inputs": inputs, "r": flat(r), "out_shape": list(out.shape),
            "out": flat(out), "grads": grads}


def main():
    names = [c["name"] for c in CASES]
    if len(set(names)) != len(names):
        sys.exit("gen_golden.py: duplicate case names")
    cases = [run(c) for c in CASES]
    lines = ["{",
             '"comment": "PyTorch reference vectors for tests/test_golden.c, written by '
             'tools/gen_golden.py; regenerate with /usr/bin/python3 tools/gen_golden.py, '
             'do not edit",',
             '"torch": %s,' % json.dumps(torch.__version__),
             '"cases": [']
    lines += [json.dumps(c, separators=(",", ":")) + ("," if i + 1 < len(cases) else "")
              for i, c in enumerate(cases)]
    lines += ["]", "}"]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d cases to %s" % (len(cases), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
