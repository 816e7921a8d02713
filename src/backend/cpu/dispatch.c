/*
 * dispatch.c — the CPU's instruction sets, found once (see dispatch.h).
 */
#include "dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static nb_isa isa = NB_ISA_BASELINE;
static bool vnni;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

static void detect(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isa = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                  ? NB_ISA_AVX512
                  : NB_ISA_AVX2;
    vnni = __builtin_cpu_supports("avx512vnni");
#endif
    const char *cap = getenv("NB_CPU_ISA"); /* may only lower what the CPU has */
    if (cap && strcmp(cap, "baseline") == 0) isa = NB_ISA_BASELINE;
    if (cap && strcmp(cap, "avx2") == 0 && isa > NB_ISA_AVX2) isa = NB_ISA_AVX2;
}

nb_isa nb__cpu_isa(void) {
    pthread_once(&isa_once, detect);
    return isa;
}

bool nb__cpu_has_vnni(void) { return nb__cpu_isa() == NB_ISA_AVX512 && vnni; }

const char *nb__cpu_features(void) {
    static const char *const names[] = {"baseline x86-64", "AVX2+FMA", "AVX-512"};
#if defined(__x86_64__)
    return names[nb__cpu_isa()];
#else
    return "the compiler's baseline";
#endif
}
