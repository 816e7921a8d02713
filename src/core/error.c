/*
 * error.c — the thread-local error: a status code and a message that names the op, the shapes,
 * or the file and byte offset.  Library code never aborts on a user's mistake; it returns NULL
 * or a status and leaves the reason here.
 */
#include "core.h"

#include <stdio.h>

static _Thread_local nb_status err_code;
static _Thread_local char err_msg[512];

static void set_error(nb_status code, const char *fmt, va_list ap) {
    err_code = code;
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
}

void *nb__fail(nb_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error(code, fmt, ap);
    va_end(ap);
    return NULL;
}

nb_status nb__fail_status(nb_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error(code, fmt, ap);
    va_end(ap);
    return code;
}

void *nb__fail_input(const char *op, const nb_tensor *t) {
    if (t && t->magic == NB_MAGIC_DEAD)
        return nb__fail(NB_ERR_SCOPE, "%s: input tensor belongs to a scope that has ended", op);
    if (err_code == NB_OK) nb__fail(NB_ERR_NULL, "%s: input tensor is NULL", op);
    return NULL;
}

nb_status nb__fail_prefix(const char *fmt, ...) {
    char msg[sizeof err_msg], prefix[sizeof err_msg];
    snprintf(msg, sizeof msg, "%s", err_code != NB_OK && err_msg[0] ? err_msg : "failed");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return nb__fail_status(err_code != NB_OK ? err_code : NB_ERR_ARG, "%s: %s", prefix, msg);
}

nb_status nb_error_code(void) { return err_code; }
const char *nb_error_message(void) { return err_code == NB_OK ? "" : err_msg; }

void nb_error_clear(void) {
    err_code = NB_OK;
    err_msg[0] = '\0';
}

const char *nb_status_name(nb_status s) {
    static const char *const names[NB_ERR_COUNT] = {
        "NB_OK",          "NB_ERR_NULL", "NB_ERR_SHAPE", "NB_ERR_DIM",
        "NB_ERR_DTYPE",   "NB_ERR_DEVICE", "NB_ERR_ARG", "NB_ERR_GRAPH",
        "NB_ERR_SCOPE",   "NB_ERR_MEMORY", "NB_ERR_IO",      "NB_ERR_VALUE",
    };
    return (unsigned)s < NB_ERR_COUNT ? names[s] : "NB_ERR_UNKNOWN";
}
