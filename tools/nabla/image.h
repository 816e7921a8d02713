/* image.h — one grayscale picture (PGM or PNG) as bytes, and resampling it, for `nabla predict`. */
#ifndef NB_CLI_IMAGE_H
#define NB_CLI_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* width x height bytes (malloc'd, the caller frees), or NULL with a message in err. */
uint8_t *image_read_gray(const char *path, int *width, int *height, char *err, size_t cap);
/* px (w x h bytes) resampled bilinearly to nw x nh bytes (malloc'd), or NULL without memory. */
uint8_t *image_resize(const uint8_t *px, int w, int h, int nw, int nh);

#endif
