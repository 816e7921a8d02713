/*
 * svg.h — what the SVG writers of src/train (curves.c, heatmap.c) share.
 */
#ifndef NB_TRAIN_SVG_H
#define NB_TRAIN_SVG_H

#include <stdio.h>

/* Writes s with XML's special characters as entities, so any title or label leaves the file
 * well formed (curves.c). */
void nb__svg_escaped(FILE *f, const char *s);

/* The opening of an SVG of width x height on white, and its title (escaped, centred, baseline at
 * title_y) when there is one. */
void nb__svg_begin(FILE *f, double width, double height, const char *title, double title_y);

#endif
