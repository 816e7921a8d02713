/*
 * update.c — the CPU backend's optimiser updates: the update rules over raw float arrays, one element at a time.
 *
 * Each loop performs the same float32 operations, in the same order, as torch 1.13's
 * _single_tensor_<optimiser> functions (the default on CPU: foreach=None means False there),
 * whose tensor calls are written next to each line: add_(x, alpha=a) is self + a x,
 * addcmul_(x, y, value=v) is self + (v x) y and addcdiv_(x, y, value=v) is self + (v x) / y (torch's
 * PointwiseOpsKernel).  The algorithm boxes of torch's docs give the same rules in mathematical
 * form.  g is the gradient; the caller skips parameters without one.
 *
 * Threads: every element is updated by exactly one thread (a piece of the pool's job), so the
 * result does not depend on the number of threads.
 */
#include "cpu.h"

#include <math.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* torch.maximum: NaN wins. */
static inline float maximum(float a, float b) { return (a > b || isnan(a)) ? a : b; }

/* An update's arguments: the parameter, up to three state arrays, the gradient, the scalars. */
typedef struct {
    float *p, *s0, *s1, *s2;
    const float *g;
    float k[8];
    bool f0, f1;
    const nb__adam_scalars *adam;
} update_job;

static void update(int64_t n, nb__range_fn *fn, update_job *j) {
    nb__parallel_for(n > NB__CPU_PARALLEL_MIN, n, fn, j);
}

/* SGD (torch.optim.SGD's algorithm box):
 *   g <- g + lambda theta                          (weight decay)
 *   b <- g on the first step, else mu b + (1 - tau) g
 *   g <- g + mu b (nesterov), or b
 *   theta <- theta - gamma g                                                                   */
NB_CLONES static void sgd_range(void *arg, int64_t lo, int64_t hi) {
    const update_job *j = arg;
    float *p = j->p, *buf = j->s0, lr = j->k[0], weight_decay = j->k[1], momentum = j->k[2];
    float one_minus_dampening = j->k[3];
    const float *g = j->g;
    bool nesterov = j->f0, first_step = j->f1;
    if (buf && !first_step && weight_decay == 0 && !nesterov) { /* the usual case, branch-free */
        NB_SIMD for (int64_t i = lo; i < hi; i++) {
            float b = buf[i] * momentum + one_minus_dampening * g[i];
            buf[i] = b;
            p[i] = p[i] + -lr * b;
        }
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        float d = g[i];
        if (weight_decay != 0) d = d + weight_decay * p[i];   /* grad.add(param, alpha=wd) */
        if (buf) {
            float b = first_step ? d                          /* torch.clone(d_p) */
                                 : buf[i] * momentum + one_minus_dampening * d;
            buf[i] = b;                                       /* buf.mul_(mu).add_(d_p, 1-tau) */
            d = nesterov ? d + momentum * b : b;              /* d_p.add(buf, alpha=mu) */
        }
        p[i] = p[i] + -lr * d;                                /* param.add_(d_p, alpha=-lr) */
    }
}

/* SGD's pieces run with results that would be subnormal flushed to zero (x86's MXCSR FTZ; inputs
 * are read as they are).  Why: the momentum of a weight whose gradient has become exactly 0 (a
 * unit the ReLU has killed) decays by mu a step into the subnormal range, some 150 steps at mu
 * 0.9 before it reaches 0, and every operation on a subnormal takes a microcode assist: the
 * course MLP's update then took 215 us a step instead of 10.5.  Flushed, such a momentum becomes 0
 * at once.  The weights keep their bits: the step lr b that becomes 0 would have been below
 * 2^-126, which rounds away against any weight of magnitude 2^-102 or more, and a weight that
 * small is not a trained one.  (Adam, RMSProp and Adagrad divide by a root of their state, which
 * with eps 0 a flushed state would turn into a division by zero: they run as torch's do.) */
static void sgd_range_flushed(void *arg, int64_t lo, int64_t hi) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | _MM_FLUSH_ZERO_ON);
    sgd_range(arg, lo, hi);
    _mm_setcsr(csr);
#else
    sgd_range(arg, lo, hi);
#endif
}

void nb__cpu_sgd_update(float *p, float *buf, const float *g, int64_t n, float lr, float weight_decay,
                    float momentum, float one_minus_dampening, bool nesterov, bool first_step) {
    update_job j = {.p = p, .s0 = buf, .g = g, .k = {lr, weight_decay, momentum, one_minus_dampening},
                    .f0 = nesterov, .f1 = first_step};
    update(n, sgd_range_flushed, &j);
}

/* Adagrad:
 *   g <- g + lambda theta
 *   sum <- sum + g^2
 *   theta <- theta - clr g / (sqrt(sum) + eps),  clr = gamma / (1 + (t - 1) eta) (caller)      */
NB_CLONES static void adagrad_range(void *arg, int64_t lo, int64_t hi) {
    const update_job *j = arg;
    float *p = j->p, *sum = j->s0, clr = j->k[0], weight_decay = j->k[1], eps = j->k[2];
    const float *g = j->g;
    for (int64_t i = lo; i < hi; i++) {
        float d = g[i];
        if (weight_decay != 0) d = d + weight_decay * p[i];
        float s = sum[i] + d * d;                             /* state_sum.addcmul_(g, g, 1) */
        sum[i] = s;
        float std = sqrtf(s) + eps;                           /* state_sum.sqrt().add_(eps) */
        p[i] = p[i] + (-clr * d) / std;                       /* param.addcdiv_(g, std, -clr) */
    }
}

void nb__cpu_adagrad_update(float *p, float *sum, const float *g, int64_t n, float clr,
                        float weight_decay, float eps) {
    update_job j = {.p = p, .s0 = sum, .g = g, .k = {clr, weight_decay, eps}};
    update(n, adagrad_range, &j);
}

/* RMSprop:
 *   g <- g + lambda theta
 *   v <- alpha v + (1 - alpha) g^2
 *   centered: g_avg <- alpha g_avg + (1 - alpha) g,  denom = sqrt(v - g_avg^2) + eps
 *   else denom = sqrt(v) + eps
 *   momentum > 0: b <- mu b + g / denom,  theta <- theta - gamma b
 *   else theta <- theta - gamma g / denom
 * buf is NULL when momentum is 0, grad_avg NULL unless centered.                                */
NB_CLONES static void rmsprop_range(void *arg, int64_t lo, int64_t hi) {
    const update_job *j = arg;
    float *p = j->p, *square_avg = j->s0, *buf = j->s1, *grad_avg = j->s2;
    float lr = j->k[0], alpha = j->k[1], one_minus_alpha = j->k[2], eps = j->k[3];
    float weight_decay = j->k[4], momentum = j->k[5];
    const float *g = j->g;
    for (int64_t i = lo; i < hi; i++) {
        float d = g[i];
        if (weight_decay != 0) d = d + weight_decay * p[i];
        float v = square_avg[i] * alpha + one_minus_alpha * d * d; /* mul_(a).addcmul_(g, g, 1-a) */
        square_avg[i] = v;
        float avg;
        if (grad_avg) {
            float ga = grad_avg[i] * alpha + one_minus_alpha * d;  /* mul_(a).add_(g, alpha=1-a) */
            grad_avg[i] = ga;
            avg = sqrtf(v + -1.0f * ga * ga);                      /* addcmul(ga, ga, -1).sqrt_() */
        } else {
            avg = sqrtf(v);
        }
        avg = avg + eps;
        if (buf) {
            float b = buf[i] * momentum + d / avg;            /* buf.mul_(mu).addcdiv_(g, avg) */
            buf[i] = b;
            p[i] = p[i] + -lr * b;                            /* param.add_(buf, alpha=-lr) */
        } else {
            p[i] = p[i] + (-lr * d) / avg;                    /* param.addcdiv_(g, avg, -lr) */
        }
    }
}

void nb__cpu_rmsprop_update(float *p, float *square_avg, float *buf, float *grad_avg, const float *g,
                        int64_t n, float lr, float alpha, float one_minus_alpha, float eps,
                        float weight_decay, float momentum) {
    update_job j = {.p = p, .s0 = square_avg, .s1 = buf, .s2 = grad_avg, .g = g,
                    .k = {lr, alpha, one_minus_alpha, eps, weight_decay, momentum}};
    update(n, rmsprop_range, &j);
}

/* Adam / AdamW:
 *   AdamW: theta <- theta (1 - gamma lambda);  Adam: g <- g + lambda theta
 *   m <- beta1 m + (1 - beta1) g
 *   v <- beta2 v + (1 - beta2) g^2
 *   amsgrad: v_max <- max(v_max, v), used for v below
 *   theta <- theta - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps),
 *   step_size = gamma / (1 - beta1^t)                                                           */
NB_CLONES static void adam_range(void *arg, int64_t lo, int64_t hi) {
    const update_job *j = arg;
    float *p = j->p, *exp_avg = j->s0, *exp_avg_sq = j->s1, *max_exp_avg_sq = j->s2;
    const float *g = j->g;
    const nb__adam_scalars s = *j->adam;
    for (int64_t i = lo; i < hi; i++) {
        float theta = p[i];
        if (s.decay_factor != 1) theta = theta * s.decay_factor; /* param.mul_(1 - lr wd) */
        float d = g[i];
        if (s.weight_decay != 0) d = d + s.weight_decay * theta;
        float m = exp_avg[i] * s.beta1 + s.one_minus_beta1 * d;  /* mul_(b1).add_(g, 1-b1) */
        float v = exp_avg_sq[i] * s.beta2 + s.one_minus_beta2 * d * d; /* addcmul_(g, g, 1-b2) */
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        if (max_exp_avg_sq) {
            v = maximum(max_exp_avg_sq[i], v);                /* torch.maximum(.., out=max) */
            max_exp_avg_sq[i] = v;
        }
        float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
        p[i] = theta + (-s.step_size * m) / denom;            /* addcdiv_(m, denom, -step) */
    }
}

void nb__cpu_adam_update(float *p, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq,
                     const float *g, int64_t n, const nb__adam_scalars *k) {
    update_job j = {.p = p, .s0 = exp_avg, .s1 = exp_avg_sq, .s2 = max_exp_avg_sq, .g = g, .adam = k};
    update(n, adam_range, &j);
}
