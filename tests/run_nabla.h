/*
 * run_nabla.h — for the tests that drive the built `nabla` command (CMake passes its path as
 * argv[1]): run_nabla("text gpt train ...") runs it in the shell with stdout and stderr kept in
 * out_text and err_text until the next call, and returns its exit status.  Include after
 * tmpdir.h (the outputs go to the test's private folder).
 */
#ifndef NB_TEST_RUN_NABLA_H
#define NB_TEST_RUN_NABLA_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static const char *nabla;
static char *out_text, *err_text;

/* argv[1], the command's path; false after a usage line naming the test. */
static bool nabla_from_args(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH_TO_NABLA\n", argv[0]);
        return false;
    }
    nabla = argv[1];
    return true;
}

/* Runs `nabla ARGS` (a shell word list); its exit status, or -1 when it did not exit. */
static int run_nabla(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", nabla, args, tpath("stdout.txt"), tpath("stderr.txt"));
    int status = system(cmd);
    free(out_text);
    free(err_text);
    size_t n;
    out_text = read_all(tpath("stdout.txt"), &n);
    err_text = read_all(tpath("stderr.txt"), &n);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void run_nabla_end(void) {
    free(out_text);
    free(err_text);
    out_text = err_text = NULL;
}

#endif
