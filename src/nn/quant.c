/*
 * quant.c — quantization-aware training modules (nabla/quant.h): observers, FakeQuantize and
 * the QAT Linear, as torch.ao.quantization 1.13 builds them.
 *
 * Observers keep min_val and max_val (buffers, torch's names) and turn them into a scale and a
 * zero point with torch's _ObserverBase._calculate_qparams.  That arithmetic runs on the host
 * on a few floats per channel, in float32 and in torch's order, so the qparams are torch's bit
 * for bit; the reductions over the observed tensor are ops (nb_min_dims, nb_max_dims).
 */
#include "nabla/quant.h"
#include "module.h"
#include "qat.h"
#include "quant_internal.h"

#include <math.h>

#define QUANT_EPS 0x1p-23f /* torch.finfo(torch.float32).eps */
#define DEFAULT_AVERAGING 0.01f
#define DEFAULT_PERCENTILE 99.99f
#define BINS 2048 /* histogram observers */

/* ---- schemes */

nb_status nb_qscheme_range(const nb_qscheme *q, int *quant_min, int *quant_max) {
    if (!q) return nb__fail_status(NB_ERR_NULL, "qscheme: NULL scheme");
    int bits = q->bits ? q->bits : 8;
    if (bits < 2 || bits > 8)
        return nb__fail_status(NB_ERR_ARG, "qscheme: bits %d is outside [2, 8]", q->bits);
    /* calculate_qmin_qmax: qint8 [-2^(b-1), 2^(b-1) - 1], quint8 [0, 2^b - 1] */
    *quant_min = q->is_signed ? -(1 << (bits - 1)) : 0;
    *quant_max = q->is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    return NB_OK;
}

static nb_status check_scheme(const nb_qscheme *q, const char *who) {
    int lo, hi;
    if (nb_qscheme_range(q, &lo, &hi) != NB_OK) return nb__fail_prefix("%s", who);
    if ((unsigned)q->kind >= NB_OBSERVER_COUNT)
        return nb__fail_status(NB_ERR_ARG, "%s: unknown observer kind %d", who, (int)q->kind);
    float c = q->averaging_constant;
    if (c != 0.0f && !(c > 0.0f && c <= 1.0f))
        return nb__fail_status(NB_ERR_ARG, "%s: averaging_constant %g is outside (0, 1]", who, c);
    float p = q->percentile;
    if (p != 0.0f && !(p > 50.0f && p <= 100.0f))
        return nb__fail_status(NB_ERR_ARG, "%s: percentile %g is outside (50, 100]", who, p);
    if (q->per_channel && q->kind >= NB_OBSERVER_PERCENTILE)
        return nb__fail_status(NB_ERR_ARG, "%s: the histogram observers are per tensor only", who);
    if (q->per_channel && (q->channels < 1 || q->ch_axis < 0))
        return nb__fail_status(NB_ERR_ARG, "%s: per channel needs channels >= 1 and ch_axis >= 0,"
                               " got channels %lld, ch_axis %d", who, (long long)q->channels,
                               q->ch_axis);
    return NB_OK;
}

/* ---- observers */

typedef struct {
    nb_qscheme q; /* bits and averaging_constant resolved */
    int qmin, qmax;
    int64_t n;    /* channels, or 1 */
    nb_tensor *min_val, *max_val;
    nb_tensor *hist; /* histogram kinds: BINS counts over [min_val, max_val] */
} observer_state;

static bool histogram_kind(const observer_state *s) { return s->q.kind >= NB_OBSERVER_PERCENTILE; }

/* The bin of v in [lo, hi] (width > 0), clamped into the histogram. */
static int64_t bin_of(float v, float lo, float width) {
    float b = (v - lo) / width * (float)BINS;
    return b <= 0.0f ? 0 : b >= (float)(BINS - 1) ? BINS - 1 : (int64_t)b;
}


/* The observed tensor's minimum and maximum (per channel: over every dim but ch_axis) into
 * mn, mx on the host. */
static nb_status extremes(const observer_state *s, nb_tensor *x, float *mn, float *mx) {
    int dims[NB_MAX_DIMS], nd = 0, axis = s->q.ch_axis;
    if (s->q.per_channel && (axis >= nb_ndim(x) || nb_shape(x)[axis] != s->n))
        return nb__fail_status(NB_ERR_SHAPE, "observer: x %s has no dim %d of size %lld",
                               NB_SHP(x), axis, (long long)s->n);
    for (int d = 0; d < nb_ndim(x); d++)
        if (!s->q.per_channel || d != axis) dims[nd++] = d;
    bool was = nb_set_grad_enabled(false);
    nb_tensor *lo = nd ? nb_min_dims(x, nd, dims, false) : x;
    nb_tensor *hi = nd ? nb_max_dims(x, nd, dims, false) : x;
    nb_set_grad_enabled(was);
    nb_status st = lo && hi ? nb__copy_logical(mn, lo) : nb_error_code();
    if (st == NB_OK) st = nb__copy_logical(mx, hi);
    if (lo != x) nb_tensor_free(lo);
    if (hi != x) nb_tensor_free(hi);
    return st;
}

/* The histogram observers' forward: widen [mn, mx] to x's extremes, move the old counts to the
 * bins of the new range that hold their centres, and count x's elements. */
static nb_status observe_histogram(observer_state *s, nb_tensor *x) {
    size_t hbytes = sizeof(float) * 2 * BINS;
    float *h = nb__alloc(hbytes), *old = h + BINS, lim[4];
    float *xs = h ? nb__host_copy(x) : NULL;
    nb_status st = xs ? NB_OK : nb_error_code();
    if (st == NB_OK) st = extremes(s, x, &lim[0], &lim[1]);
    if (st == NB_OK) st = nb__copy_logical(&lim[2], s->min_val);
    if (st == NB_OK) st = nb__copy_logical(&lim[3], s->max_val);
    if (st == NB_OK) st = nb__copy_logical(old, s->hist);
    if (st == NB_OK && !(isfinite(lim[0]) && isfinite(lim[1])))
        st = nb__fail_status(NB_ERR_ARG, "observer: x holds %g, not finite",
                             isfinite(lim[0]) ? lim[1] : lim[0]);
    if (st == NB_OK) {
        float lo = fminf(lim[0], lim[2]), hi = fmaxf(lim[1], lim[3]);
        float width = hi - lo, old_width = lim[3] - lim[2];
        for (int64_t b = 0; b < BINS; b++) h[b] = 0.0f;
        for (int64_t b = 0; old_width >= 0.0f && b < BINS; b++) /* nothing before the first */
            h[width > 0.0f ? bin_of(lim[2] + ((float)b + 0.5f) * old_width / BINS, lo, width) : 0] += old[b];
        for (int64_t i = 0; i < nb_numel(x); i++) h[width > 0.0f ? bin_of(xs[i], lo, width) : 0] += 1.0f;
        st = nb__store_logical(s->hist, h);
        if (st == NB_OK) st = nb__store_logical(s->min_val, &lo);
        if (st == NB_OK) st = nb__store_logical(s->max_val, &hi);
    }
    if (xs) nb__host_free(xs, x);
    if (h) nb__dealloc(h, hbytes);
    return st;
}

/* MinMaxObserver.forward: min(cur, old), max(cur, old); the moving average
 * old + c (cur - old), where the first tensor (state still +inf / -inf) sets them. */
static nb_status observe(observer_state *s, nb_tensor *x) {
    if (nb_numel(x) == 0) return NB_OK; /* torch returns at once */
    if (histogram_kind(s)) return observe_histogram(s, x);
    int64_t n = s->n;
    float *buf = nb__alloc(sizeof(float) * 4 * (size_t)n);
    if (!buf) return nb_error_code();
    float *mn = buf, *mx = buf + n, *old_mn = buf + 2 * n, *old_mx = buf + 3 * n;
    nb_status st = extremes(s, x, mn, mx);
    if (st == NB_OK) st = nb__copy_logical(old_mn, s->min_val);
    if (st == NB_OK) st = nb__copy_logical(old_mx, s->max_val);
    bool first = true;
    for (int64_t c = 0; c < n; c++)
        first = first && old_mn[c] == INFINITY && old_mx[c] == -INFINITY;
    float k = s->q.averaging_constant;
    for (int64_t c = 0; st == NB_OK && c < n; c++) {
        if (s->q.kind == NB_OBSERVER_MINMAX) {
            mn[c] = mn[c] < old_mn[c] || isnan(mn[c]) ? mn[c] : old_mn[c];
            mx[c] = mx[c] > old_mx[c] || isnan(mx[c]) ? mx[c] : old_mx[c];
        } else if (!first) {
            float dmn = mn[c] - old_mn[c], dmx = mx[c] - old_mx[c];
            float smn = k * dmn, smx = k * dmx;
            mn[c] = old_mn[c] + smn;
            mx[c] = old_mx[c] + smx;
        }
    }
    if (st == NB_OK) st = nb__store_logical(s->min_val, mn);
    if (st == NB_OK) st = nb__store_logical(s->max_val, mx);
    nb__dealloc(buf, sizeof(float) * 4 * (size_t)n);
    return st;
}

static nb_tensor *observer_forward(nb_module *m, nb_tensor *x) {
    if (observe(NB__STATE(observer_state, m), x) != NB_OK) return NULL;
    nb__retain(x);
    return x;
}

static void observer_describe(const nb_module *m, nb_attrs *d) {
    const observer_state *s = NB__STATE(observer_state, m);
    nb_attrs_int(d, "quant_min", s->qmin);
    nb_attrs_int(d, "quant_max", s->qmax);
    nb_attrs_bool(d, "symmetric", s->q.symmetric);
    if (s->q.per_channel) nb_attrs_int(d, "ch_axis", s->q.ch_axis);
    if (s->q.kind == NB_OBSERVER_MOVING_AVERAGE)
        nb_attrs_float(d, "averaging_constant", s->q.averaging_constant);
    if (s->q.kind == NB_OBSERVER_PERCENTILE) nb_attrs_float(d, "percentile", s->q.percentile);
}

#define OBSERVER_CLASS(name_) \
    {.name = name_, .forward = observer_forward, .describe = observer_describe}
static const nb_module_class observer_classes[2][NB_OBSERVER_COUNT] = {
    {OBSERVER_CLASS("MinMaxObserver"), OBSERVER_CLASS("MovingAverageMinMaxObserver"),
     OBSERVER_CLASS("PercentileObserver"), OBSERVER_CLASS("MSEObserver")},
    /* histogram kinds are per tensor only (check_scheme): no per-channel classes */
    {OBSERVER_CLASS("PerChannelMinMaxObserver"),
     OBSERVER_CLASS("MovingAveragePerChannelMinMaxObserver"), {0}, {0}},
};
#undef OBSERVER_CLASS

static observer_state *observer_of(const nb_module *m) {
    const nb_module_class *cls = nb_module_class_of(m);
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < NB_OBSERVER_COUNT; k++)
            if (cls == &observer_classes[p][k]) return NB__STATE(observer_state, m);
    return nb__fail(NB_ERR_ARG, "observer: %s is not an observer", cls ? cls->name : "NULL");
}

nb_module *nb_observer_new(const nb_qscheme *scheme) {
    if (check_scheme(scheme, "observer") != NB_OK) return NULL;
    nb_module *m = nb_module_new(&observer_classes[scheme->per_channel][scheme->kind],
                                 sizeof(observer_state));
    if (!m) return NULL;
    observer_state *s = NB__STATE(observer_state, m);
    s->q = *scheme;
    s->q.bits = scheme->bits ? scheme->bits : 8;
    if (s->q.averaging_constant == 0.0f) s->q.averaging_constant = DEFAULT_AVERAGING;
    if (s->q.percentile == 0.0f) s->q.percentile = DEFAULT_PERCENTILE;
    nb_qscheme_range(scheme, &s->qmin, &s->qmax);
    s->n = scheme->per_channel ? scheme->channels : 1;
    int nd = scheme->per_channel ? 1 : 0;
    s->min_val = nb_module_add_buffer(m, "min_val", NB_F32, nd, &s->n);
    s->max_val = s->min_val ? nb_module_add_buffer(m, "max_val", NB_F32, nd, &s->n) : NULL;
    int64_t bins = BINS;
    if (s->max_val && histogram_kind(s)) s->hist = nb_module_add_buffer(m, "histogram", NB_F32, 1, &bins);
    float *init = s->max_val && (s->hist || !histogram_kind(s)) ? nb__alloc(sizeof(float) * (size_t)s->n) : NULL;
    nb_status st = init ? NB_OK : nb_error_code();
    for (int64_t c = 0; init && c < s->n; c++) init[c] = INFINITY;
    if (st == NB_OK) st = nb__store_logical(s->min_val, init);
    for (int64_t c = 0; init && c < s->n; c++) init[c] = -INFINITY;
    if (st == NB_OK) st = nb__store_logical(s->max_val, init);
    if (init) nb__dealloc(init, sizeof(float) * (size_t)s->n);
    if (st != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* _calculate_qparams for one channel, in float32 as torch: see nabla/quant.h. */
static void qparams_of(const observer_state *s, float mn, float mx, float *scale, float *zp) {
    if (mn == INFINITY && mx == -INFINITY) { /* nothing observed: torch's defaults */
        *scale = 1.0f;
        *zp = 0.0f;
        return;
    }
    float min_neg = fminf(mn, 0.0f), max_pos = fmaxf(mx, 0.0f);
    if (s->q.symmetric) {
        max_pos = fmaxf(-min_neg, max_pos);
        *scale = fmaxf(max_pos / ((float)(s->qmax - s->qmin) / 2.0f), QUANT_EPS);
        /* quint8: 128, or the middle rounded down for a customised (narrower) range */
        *zp = s->q.is_signed ? 0.0f : s->q.bits == 8 ? 128.0f : (float)((s->qmin + s->qmax) / 2);
        return;
    }
    *scale = fmaxf((max_pos - min_neg) / (float)(s->qmax - s->qmin), QUANT_EPS);
    float z = (float)s->qmin - nearbyintf(min_neg / *scale);
    *zp = fminf(fmaxf(z, (float)s->qmin), (float)s->qmax);
}

/* The squared error of quantizing the histogram's bin centres with (scale, zp). */
static double histogram_error(const observer_state *s, const float *h, float lo, float width,
                              float scale, float zp) {
    double e = 0.0;
    float inv = 1.0f / scale;
    for (int64_t b = 0; b < BINS; b++) {
        if (h[b] == 0.0f) continue;
        float c = lo + ((float)b + 0.5f) * width / BINS;
        float q = fminf(fmaxf(zp + nearbyintf(c * inv), (float)s->qmin), (float)s->qmax);
        double d = (double)((q - zp) * scale) - c;
        e += (double)h[b] * d * d;
    }
    return e;
}

/* The clipped range [*mn, *mx] of a histogram observer (the header says how). */
static void clip_range(const observer_state *s, const float *h, float *mn, float *mx) {
    float lo = *mn, width = *mx - *mn;
    if (!(width > 0.0f)) return;
    if (s->q.kind == NB_OBSERVER_PERCENTILE) {
        double total = 0.0, below = 0.0, tail = (100.0 - s->q.percentile) / 100.0;
        for (int64_t b = 0; b < BINS; b++) total += h[b];
        int64_t first = 0, last = BINS - 1;
        for (below = 0.0; first < BINS - 1 && (below += h[first]) <= tail * total; first++) {}
        for (below = 0.0; last > 0 && (below += h[last]) <= tail * total; last--) {}
        *mn = lo + (float)first * width / BINS;
        *mx = lo + (float)(last + 1) * width / BINS;
        return;
    }
    double best = INFINITY;
    float best_mn = *mn, best_mx = *mx, top_mn = *mn, top_mx = *mx;
    for (int a = 1; a <= 100; a++) {
        float f = (float)a / 100.0f, scale, zp;
        qparams_of(s, top_mn * f, top_mx * f, &scale, &zp);
        double e = histogram_error(s, h, lo, width, scale, zp);
        if (e < best) best = e, best_mn = top_mn * f, best_mx = top_mx * f;
    }
    *mn = best_mn, *mx = best_mx;
}

/* The qparams of the observer into host arrays of its n channels. */
static nb_status qparams_host(const observer_state *s, float *scale, float *zp) {
    float *mn = nb__alloc(sizeof(float) * 2 * (size_t)s->n);
    if (!mn) return nb_error_code();
    float *mx = mn + s->n;
    nb_status st = nb__copy_logical(mn, s->min_val);
    if (st == NB_OK) st = nb__copy_logical(mx, s->max_val);
    float *h = st == NB_OK && histogram_kind(s) ? nb__host_copy(s->hist) : NULL;
    if (h) clip_range(s, h, &mn[0], &mx[0]);
    if (h) nb__host_free(h, s->hist);
    else if (st == NB_OK && histogram_kind(s)) st = nb_error_code();
    for (int64_t c = 0; st == NB_OK && c < s->n; c++)
        qparams_of(s, mn[c], mx[c], &scale[c], &zp[c]);
    nb__dealloc(mn, sizeof(float) * 2 * (size_t)s->n);
    return st;
}

nb_status nb_observer_qparams(nb_module *observer, nb_tensor **scale, nb_tensor **zero_point) {
    if (!scale || !zero_point || !observer)
        return nb__fail_status(NB_ERR_NULL, "observer_qparams: NULL argument");
    *scale = *zero_point = NULL;
    const observer_state *s = observer_of(observer);
    if (!s) return nb_error_code();
    float *host = nb__alloc(sizeof(float) * 2 * (size_t)s->n);
    nb_status st = host ? qparams_host(s, host, host + s->n) : nb_error_code();
    if (st == NB_OK) {
        *scale = nb_from_data(host, 1, &s->n);
        *zero_point = *scale ? nb_from_data(host + s->n, 1, &s->n) : NULL;
        if (!*zero_point) {
            st = nb_error_code();
            nb_tensor_free(*scale);
            *scale = NULL;
        }
    }
    if (host) nb__dealloc(host, sizeof(float) * 2 * (size_t)s->n);
    return st;
}

/* ---- FakeQuantize */

typedef struct {
    nb_fake_quantize_opts o;
    nb_module *observer;
    nb_tensor *scale, *zero_point;
    bool observer_enabled, fake_quant_enabled;
} fq_state;

/* Copies the observer's qparams into scale and zero_point (torch: scale.copy_(_scale)). */
static nb_status update_qparams(fq_state *s) {
    const observer_state *ob = NB__STATE(observer_state, s->observer);
    float *host = nb__alloc(sizeof(float) * 2 * (size_t)ob->n);
    nb_status st = host ? qparams_host(ob, host, host + ob->n) : nb_error_code();
    if (st == NB_OK) st = nb__store_logical(s->scale, host);
    if (st == NB_OK) st = nb__store_logical(s->zero_point, host + ob->n);
    if (host) nb__dealloc(host, sizeof(float) * 2 * (size_t)ob->n);
    return st;
}

/* _LearnableFakeQuantize's edits of its parameters' data: scale clamped to eps while the
 * observer is off, and z = 0 for symmetric schemes before fake quantizing. */
static nb_status adjust_learnable(fq_state *s) {
    const observer_state *ob = NB__STATE(observer_state, s->observer);
    float *host = nb__alloc(sizeof(float) * (size_t)ob->n);
    nb_status st = host ? nb__copy_logical(host, s->scale) : nb_error_code();
    for (int64_t c = 0; st == NB_OK && !s->observer_enabled && c < ob->n; c++)
        host[c] = fmaxf(host[c], QUANT_EPS);
    if (st == NB_OK && !s->observer_enabled) st = nb__store_logical(s->scale, host);
    bool zero = s->o.scheme.symmetric && s->fake_quant_enabled;
    for (int64_t c = 0; st == NB_OK && zero && c < ob->n; c++) host[c] = 0.0f;
    if (st == NB_OK && zero) st = nb__store_logical(s->zero_point, host);
    if (host) nb__dealloc(host, sizeof(float) * (size_t)ob->n);
    return st;
}

static nb_tensor *fake_quant(const fq_state *s, nb_tensor *x) {
    const observer_state *ob = NB__STATE(observer_state, s->observer);
    int axis = s->o.scheme.ch_axis;
    if (s->o.learnable) {
        /* torch: 1.0 / (X.numel() * quant_max) ** 0.5, a double handed to a float argument */
        float gf = s->o.grad_scaling ? (float)(1.0 / sqrt((double)nb_numel(x) * ob->qmax)) : 1.0f;
        return s->o.scheme.per_channel
                   ? nb_fake_quantize_learnable_per_channel(x, s->scale, s->zero_point, axis,
                                                            ob->qmin, ob->qmax, gf)
                   : nb_fake_quantize_learnable_per_tensor(x, s->scale, s->zero_point, ob->qmin,
                                                           ob->qmax, gf);
    }
    return s->o.scheme.per_channel
               ? nb_fake_quantize_per_channel(x, s->scale, s->zero_point, axis, ob->qmin,
                                              ob->qmax, s->o.ste)
               : nb_fake_quantize_per_tensor(x, s->scale, s->zero_point, ob->qmin, ob->qmax,
                                             s->o.ste);
}

static nb_tensor *fq_forward(nb_module *m, nb_tensor *x) {
    fq_state *s = NB__STATE(fq_state, m);
    if (s->observer_enabled) {
        if (observe(NB__STATE(observer_state, s->observer), x) != NB_OK) return NULL;
        if (update_qparams(s) != NB_OK) return NULL;
    }
    if (s->o.learnable && adjust_learnable(s) != NB_OK) return NULL;
    if (!s->fake_quant_enabled) {
        nb__retain(x);
        return x;
    }
    return fake_quant(s, x);
}

static void fq_describe(const nb_module *m, nb_attrs *d) {
    const fq_state *s = NB__STATE(fq_state, m);
    const observer_state *ob = NB__STATE(observer_state, s->observer);
    nb_attrs_bool(d, "fake_quant_enabled", s->fake_quant_enabled);
    nb_attrs_bool(d, "observer_enabled", s->observer_enabled);
    nb_attrs_int(d, "quant_min", ob->qmin);
    nb_attrs_int(d, "quant_max", ob->qmax);
    nb_attrs_bool(d, "per_channel", s->o.scheme.per_channel);
    nb_attrs_bool(d, "symmetric", s->o.scheme.symmetric);
    nb_attrs_bool(d, "learnable", s->o.learnable);
}

static const nb_module_class fq_classes[2] = {
    {.name = "FakeQuantize", .forward = fq_forward, .describe = fq_describe},
    {.name = "_LearnableFakeQuantize", .forward = fq_forward, .describe = fq_describe},
};

/* The qparams' tensors: buffers, or parameters when learnable; scale 1 and z 0 at first. */
static nb_status add_qparams(nb_module *m, fq_state *s, int64_t n) {
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "scale" : "zero_point";
        nb_tensor *t = s->o.learnable ? nb_module_add_param(m, name, 1, &n)
                                      : nb_module_add_buffer(m, name, NB_F32, 1, &n);
        if (!t) return nb_error_code();
        *(i == 0 ? &s->scale : &s->zero_point) = t;
    }
    nb_tensor *one = nb_ones(1, &n);
    if (!one) return nb_error_code();
    nb__copy_tensor(s->scale, one);
    nb_tensor_free(one);
    return NB_OK;
}

nb_module *nb_fake_quantize_new(const nb_fake_quantize_opts *opts) {
    if (!opts) return nb__fail(NB_ERR_NULL, "FakeQuantize: NULL options");
    if ((unsigned)opts->ste >= NB_STE_COUNT)
        return nb__fail(NB_ERR_ARG, "FakeQuantize: unknown ste %d", (int)opts->ste);
    nb_module *observer = nb_observer_new(&opts->scheme);
    if (!observer) {
        nb__fail_prefix("FakeQuantize");
        return NULL;
    }
    nb_module *m = nb_module_new(&fq_classes[opts->learnable], sizeof(fq_state));
    if (!m) {
        nb_module_free(observer);
        return NULL;
    }
    fq_state *s = NB__STATE(fq_state, m);
    *s = (fq_state){.o = *opts, .observer = observer, .observer_enabled = true,
                    .fake_quant_enabled = true};
    if (add_qparams(m, s, NB__STATE(observer_state, observer)->n) != NB_OK ||
        nb_module_add_child(m, "activation_post_process", observer) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* Sets one switch (observer: true, fake quantization: false) of every FakeQuantize in m's
 * tree; how many there are. */
static int set_switch(nb_module *m, bool observer, bool enabled) {
    int n = 0;
    if (m->cls == &fq_classes[0] || m->cls == &fq_classes[1]) {
        fq_state *s = NB__STATE(fq_state, m);
        *(observer ? &s->observer_enabled : &s->fake_quant_enabled) = enabled;
        n++;
    }
    for (int i = 0; i < m->children.n; i++) n += set_switch(NB__CHILD(m, i), observer, enabled);
    return n;
}

static nb_status switch_all(nb_module *m, bool observer, bool enabled) {
    const char *op = observer ? "fake_quantize_enable_observer" : "fake_quantize_enable_fake_quant";
    if (!m) return nb__fail_status(NB_ERR_NULL, "%s: NULL module", op);
    if (set_switch(m, observer, enabled) == 0)
        return nb__fail_status(NB_ERR_ARG, "%s: a %s holds no FakeQuantize", op, m->cls->name);
    return NB_OK;
}

nb_status nb_fake_quantize_enable_observer(nb_module *m, bool enabled) {
    return switch_all(m, true, enabled);
}

nb_status nb_fake_quantize_enable_fake_quant(nb_module *m, bool enabled) {
    return switch_all(m, false, enabled);
}

/* ---- the QAT Linear */

typedef struct {
    int64_t in_features, out_features;
    nb_tensor *weight, *bias;
    nb_module *weight_fake_quant, *activation_post_process;
} qat_linear_state;

static nb_tensor *qat_linear_forward(nb_module *m, nb_tensor *x) {
    const qat_linear_state *s = NB__STATE(qat_linear_state, m);
    nb_tensor *w = nb_module_forward(s->weight_fake_quant, s->weight);
    nb_tensor *y = w ? nb_linear(x, w, s->bias) : NULL;
    nb_tensor *out = y ? nb_module_forward(s->activation_post_process, y) : NULL;
    nb_tensor_free(y);
    nb_tensor_free(w);
    return out;
}

static void qat_linear_describe(const nb_module *m, nb_attrs *d) {
    const qat_linear_state *s = NB__STATE(qat_linear_state, m);
    nb_attrs_int(d, "in_features", s->in_features);
    nb_attrs_int(d, "out_features", s->out_features);
    nb_attrs_bool(d, "bias", s->bias != NULL);
}

static const nb_module_class qat_linear_class = {
    .name = "Linear", .forward = qat_linear_forward, .describe = qat_linear_describe};

bool nb__qat_add_fake_quant(nb_module *m, const char *name, const nb_fake_quantize_opts *o,
                            nb_module **child) {
    *child = nb_fake_quantize_new(o);
    if (*child && nb_module_add_child(m, name, *child) == NB_OK) return true;
    nb__fail_prefix("%s (QAT): %s", m->cls->name, name);
    return false;
}

nb_fake_quantize_opts nb__qat_weight_opts(const nb_qat_opts *o, int64_t out_channels) {
    return (nb_fake_quantize_opts){
        .scheme = {.kind = NB_OBSERVER_MOVING_AVERAGE, .bits = o->weight_bits, .is_signed = true,
                   .symmetric = true, .per_channel = true, .ch_axis = 0, .channels = out_channels},
        .ste = o->ste, .learnable = o->learnable, .grad_scaling = o->learnable};
}

nb_fake_quantize_opts nb__qat_act_opts(const nb_qat_opts *o) {
    return (nb_fake_quantize_opts){.scheme = {.kind = NB_OBSERVER_MOVING_AVERAGE, .bits = o->act_bits},
                                   .ste = o->ste, .learnable = o->learnable, .grad_scaling = o->learnable};
}

/* The QAT Linear over a copy of a float Linear's parameters (torch's qat.Linear.from_float). */
static nb_module *qat_linear_of(const nb__linear_state *ls, const nb_qat_opts *opts) {
    nb_qat_opts o = opts ? *opts : (nb_qat_opts){0};
    int64_t in = ls->in_features, out = ls->out_features;
    nb_fake_quantize_opts wq = nb__qat_weight_opts(&o, out), aq = nb__qat_act_opts(&o);
    nb_module *m = nb_module_new(&qat_linear_class, sizeof(qat_linear_state));
    if (!m) return NULL;
    qat_linear_state *s = NB__STATE(qat_linear_state, m);
    *s = (qat_linear_state){.in_features = in, .out_features = out};
    s->weight = nb_module_add_param(m, "weight", NB_SHAPE(out, in));
    s->bias = s->weight && ls->bias ? nb_module_add_param(m, "bias", NB_SHAPE(out)) : NULL;
    bool made = s->weight && (!ls->bias || s->bias);
    if (made) nb__copy_tensor(s->weight, ls->weight);
    if (made && ls->bias) nb__copy_tensor(s->bias, ls->bias);
    if (made) made = nb__qat_add_fake_quant(m, "weight_fake_quant", &wq, &s->weight_fake_quant);
    if (made) made = nb__qat_add_fake_quant(m, "activation_post_process", &aq, &s->activation_post_process);
    if (!made) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_qat_linear_new(int64_t in_features, int64_t out_features, bool bias,
                             const nb_qat_opts *opts) {
    nb_module *lin = nb_linear_new(in_features, out_features, bias); /* torch's initialisation */
    nb_module *m = lin ? qat_linear_of(NB__STATE(nb__linear_state, lin), opts) : NULL;
    nb_module_free(lin);
    return m;
}

nb_module *nb_qat_linear_from(const nb_module *linear, const nb_qat_opts *opts) {
    if (!linear) return nb__fail(NB_ERR_NULL, "qat_linear_from: NULL module");
    if (nb_module_class_of(linear) != &nb__linear_class)
        return nb__fail(NB_ERR_ARG, "qat_linear_from: a %s%s is not a float Linear",
                        nb_module_type(linear),
                        nb_module_class_of(linear) == &qat_linear_class ? " (QAT)" : "");
    return qat_linear_of(NB__STATE(nb__linear_state, linear), opts);
}

bool nb__qat_linear_parts(const nb_module *m, nb__qat_parts *p) {
    if (nb_module_class_of(m) != &qat_linear_class) return false;
    const qat_linear_state *s = NB__STATE(qat_linear_state, m);
    const fq_state *w = NB__STATE(fq_state, s->weight_fake_quant);
    const fq_state *a = NB__STATE(fq_state, s->activation_post_process);
    const observer_state *wo = NB__STATE(observer_state, w->observer);
    *p = (nb__qat_parts){.weight = s->weight, .bias = s->bias, .weight_scale = w->scale,
                                .weight_zero_point = w->zero_point, .weight_qmin = wo->qmin,
                                .weight_qmax = wo->qmax, .scale = a->scale,
                                .zero_point = a->zero_point};
    return true;
}
