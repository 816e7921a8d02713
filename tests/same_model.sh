# same_model.sh — sourced by the model-parallel command tests (dist_train_{tp,pp}_matches.sh):
#   same_model NAME ONE OTHER   passes when the safetensors files ONE and OTHER have the same
#   header but its checksum (the weights differ in their last bits) and float32 weights within
#   1e-5 of the largest plus 1e-5 relative; prints the largest difference under NAME.
# the float32 weights after a file's header (8-byte length, then JSON)
floats() { od -A n -v -t f4 -j $((8 + $(od -A n -t u8 -N 8 "$1"))) "$1" | tr -s ' ' '\n' | grep -v '^$'; }
header() { head -c $((8 + $(od -A n -t u8 -N 8 "$1"))) "$1" | tail -c +9 | sed 's/"nabla.file_crc32":"[0-9a-f]*",//'; }
same_model() {
    [ "$(header "$2")" = "$(header "$3")" ] || {
        echo "$1: $3 names other tensors, shapes or metadata than $2" >&2; return 1; }
    floats "$2" > "$2.f"
    floats "$3" > "$3.f"
    paste "$2.f" "$3.f" | awk -v name="$1" '
        function abs(x) { return x < 0 ? -x : x }
        { a[NR] = $1; b[NR] = $2; if (abs($1) > big) big = abs($1) }
        END {
            for (i = 1; i <= NR; i++) { d = abs(a[i] - b[i]); if (d > worst) worst = d
                if (d > 1e-5 * big + 1e-5 * abs(a[i])) { printf "weight %d: %.9g vs %.9g\n", i, a[i], b[i]; bad = 1 } }
            printf "%s: %d weights, largest difference %.3g (largest weight %.3g)\n", name, NR, worst, big
            exit bad }'
}
