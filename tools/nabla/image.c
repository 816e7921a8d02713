/*
 * image.c — reading one grayscale picture for `nabla predict`: PGM (P5 binary or P2 text,
 * maxval up to 255) by hand since the format is four header fields, and PNG through libpng,
 * converted to 8-bit gray.  Both give width x height bytes.
 */
#include "image.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>

/* Pictures above this many pixels are refused before any allocation: a header may claim any
 * size, and a classifier's input is small. */
#define MAX_PIXELS (1L << 26)

/* Reads the next header integer of a PGM file, skipping whitespace and # comments. */
static bool pgm_int(FILE *f, long *v) {
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(f)) != EOF && c != '\n') {
            }
        } else if (c < '0' || c > '9') {
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
        } else {
            break;
        }
    }
    if (c == EOF) return false;
    *v = c - '0';
    while ((c = fgetc(f)) >= '0' && c <= '9')
        if ((*v = *v * 10 + (c - '0')) > 1 << 20) return false;
    return true; /* the one whitespace byte after the number has been consumed */
}

static uint8_t *read_pgm(FILE *f, const char *path, int *w, int *h, char *err, size_t cap) {
    char magic[2];
    long width, height, maxval;
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '2') ||
        !pgm_int(f, &width) || !pgm_int(f, &height) || !pgm_int(f, &maxval) || width < 1 ||
        height < 1 || maxval < 1 || maxval > 255) {
        snprintf(err, cap, "%s: not a PGM image with 8-bit gray values", path);
        return NULL;
    }
    if (width > MAX_PIXELS / height) {
        snprintf(err, cap, "%s: a PGM image of %ldx%ld pixels is too large", path, width, height);
        return NULL;
    }
    uint8_t *px = malloc((size_t)(width * height));
    if (!px) return snprintf(err, cap, "%s: out of memory", path), NULL;
    bool ok = true;
    if (magic[1] == '5') {
        ok = fread(px, 1, (size_t)(width * height), f) == (size_t)(width * height);
        for (long i = 0; ok && i < width * height; i++) ok = px[i] <= maxval;
    } else {
        for (long i = 0, v; ok && i < width * height; i++) ok = pgm_int(f, &v) && v <= maxval && (px[i] = (uint8_t)v, true);
    }
    if (!ok) {
        free(px);
        snprintf(err, cap, "%s: truncated PGM data, or a value above maxval %ld", path, maxval);
        return NULL;
    }
    for (long i = 0; i < width * height && maxval != 255; i++) px[i] = (uint8_t)(px[i] * 255 / maxval);
    *w = (int)width;
    *h = (int)height;
    return px;
}

static uint8_t *read_png(FILE *f, const char *path, int *w, int *h, char *err, size_t cap) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    uint8_t *px = NULL;
    if (png_image_begin_read_from_stdio(&img, f)) {
        if (img.width > MAX_PIXELS / (img.height ? img.height : 1)) {
            snprintf(err, cap, "%s: a PNG image of %ux%u pixels is too large", path, img.width, img.height);
            png_image_free(&img);
            return NULL;
        }
        img.format = PNG_FORMAT_GRAY;
        px = malloc(PNG_IMAGE_SIZE(img));
        if (px && png_image_finish_read(&img, NULL, px, 0, NULL)) {
            *w = (int)img.width;
            *h = (int)img.height;
            return px;
        }
    }
    snprintf(err, cap, "%s: %s", path, img.message[0] ? img.message : "cannot read the PNG");
    free(px);
    png_image_free(&img);
    return NULL;
}

uint8_t *image_read_gray(const char *path, int *width, int *height, char *err, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, cap, "%s: cannot open", path), NULL;
    unsigned char sig[8] = {0};
    size_t got = fread(sig, 1, sizeof sig, f);
    rewind(f);
    uint8_t *px = got == 8 && !png_sig_cmp(sig, 0, 8) ? read_png(f, path, width, height, err, cap)
                                                     : read_pgm(f, path, width, height, err, cap);
    fclose(f);
    return px;
}

/* Bilinear resampling with pixel centres aligned (source x = (x + 0.5) * w / nw - 0.5, clamped
 * at the edges), as torch's interpolate(mode="bilinear", align_corners=False): halving a
 * picture averages each 2x2 block. */
uint8_t *image_resize(const uint8_t *px, int w, int h, int nw, int nh) {
    uint8_t *out = malloc((size_t)nw * (size_t)nh);
    if (!out) return NULL;
    for (int y = 0; y < nh; y++) {
        double sy = (y + 0.5) * h / nh - 0.5;
        sy = sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
        int y0 = (int)sy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        double fy = sy - y0;
        for (int x = 0; x < nw; x++) {
            double sx = (x + 0.5) * w / nw - 0.5;
            sx = sx < 0 ? 0 : sx > w - 1 ? w - 1 : sx;
            int x0 = (int)sx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            double fx = sx - x0;
            double top = px[y0 * w + x0] * (1 - fx) + px[y0 * w + x1] * fx;
            double bottom = px[y1 * w + x0] * (1 - fx) + px[y1 * w + x1] * fx;
            out[y * nw + x] = (uint8_t)(top * (1 - fy) + bottom * fy + 0.5);
        }
    }
    return out;
}
