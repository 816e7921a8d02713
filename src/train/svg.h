/*
 * svg.h — what the SVG writers of src/train (curves.c, heatmap.c) share.
 */
#ifndef NB_TRAIN_SVG_H
#define NB_TRAIN_SVG_H

#include <stdio.h>

/* Writes s with XML's special characters as entities, so any title or label leaves the file
 * well formed (curves.c). */
void nb__svg_escaped(FILE *f, const char *s);

#endif
