/* image.h — one grayscale picture (PGM or PNG) as bytes, for `nabla predict`. */
#ifndef NB_CLI_IMAGE_H
#define NB_CLI_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* width x height bytes (malloc'd, the caller frees), or NULL with a message in err. */
uint8_t *image_read_gray(const char *path, int *width, int *height, char *err, size_t cap);

#endif
