# random_idx.sh — sourced by the distributed and model-parallel tests: random_idx DIR TRAIN TEST
# writes a small MNIST-format data set into DIR (gzipped IDX files: big-endian magic 0x0803
# images / 0x0801 labels and sizes, then bytes): random 28x28 images, labels 0..9 (tr repeats its
# last digit for the bytes above 9, so most are 9).
be32() { printf "\\$(printf '%03o' $(($1 >> 24 & 255)))\\$(printf '%03o' $(($1 >> 16 & 255)))"; \
         printf "\\$(printf '%03o' $(($1 >> 8 & 255)))\\$(printf '%03o' $(($1 & 255)))"; }
random_idx_split() { # DIR NAME COUNT
    { be32 2051; be32 "$3"; be32 28; be32 28; head -c $(($3 * 784)) /dev/urandom; } | gzip > "$1/$2-images-idx3-ubyte.gz"
    { be32 2049; be32 "$3"; head -c "$3" /dev/urandom | tr '\000-\377' '\000-\011'; } | gzip > "$1/$2-labels-idx1-ubyte.gz"
}
random_idx() {
    mkdir -p "$1"
    random_idx_split "$1" train "$2"
    random_idx_split "$1" t10k "$3"
}
