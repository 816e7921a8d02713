/*
 * symbolic_internal.h — what the symbolic-regression files share: the function library's table
 * (symbolic_lib.c), which the expressions (symbolic_expr.c) read to evaluate and print.
 */
#ifndef NB_SYMBOLIC_INTERNAL_H
#define NB_SYMBOLIC_INTERNAL_H

#include "../core/core.h"

/* One library function.  The print templates hold one %s, the argument: printed bare inside a
 * call's parentheses, or, where `atom_arg` is set (powers, 1/x), wrapped in parentheses unless
 * it is a variable, a call or a nonnegative number. */
typedef struct {
    const char *name;
    int complexity;
    double (*f)(double);
    const char *text, *latex;
    bool atom_arg;
    int power; /* k for x^k and -k for 1/x^k (their argument's constant factor comes out as
                  c^k); 0 for the rest */
} nb__symfn;

extern const nb__symfn nb__symfns[];
extern const int nb__symfn_count;
/* The indices of the identity and of 0, which simplification removes. */
int nb__symfn_identity(void);
int nb__symfn_zero(void);

#endif
