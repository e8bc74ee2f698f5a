#!/usr/bin/env bash
# dlvp eval's memory does not grow with the dataset: peak RSS of `dlvp eval` on the demo model
# over synthetic datasets 10× apart in size (and at 512 px, 4× the pixels per image).
#
#   bench/eval_memory.sh [SCRATCH_DIR]      (default /tmp/dlvp-eval-memory; ~1 GB of PNGs)
#
# Prints one line per run: images, side, pixels scored, wall time, peak RSS (GNU time's
# "Maximum resident set size"). The bound it shows: eval keeps one score per image and fixed
# pixel histograms (eval/src/pixels.rs: ~1M bins × 40 bytes), never the maps.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${1:-/tmp/dlvp-eval-memory}
cargo build --release --locked --quiet
dlvp=target/release/dlvp
rm -rf "$scratch"
mkdir -p "$scratch"
printf '%8s %6s %14s %8s %12s\n' images side pixels wall_s peak_rss_MiB
for run in "60 256" "600 256" "60 512" "600 512"; do
    set -- $run
    count=$1 size=$2
    data="$scratch/data-$count-$size"
    $dlvp demo-data --out "$data" --count "$count" --train-count 0 --size "$size" --seed 9 >/dev/null 2>&1
    images=$(find "$data" -path '*/test/*' -name '*.png' | wc -l)
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$scratch/rss" \
        $dlvp eval --data "$data" --out "$scratch/report-$count-$size" --worst 4 >/dev/null 2>"$scratch/log"
    end=$(date +%s.%N)
    rss_kib=$(tail -1 "$scratch/rss")
    printf '%8d %6d %14d %8.1f %12.1f\n' "$images" "$size" $((images * size * size)) \
        "$(echo "$end - $start" | bc)" "$(echo "scale=1; $rss_kib / 1024" | bc)"
    rm -rf "$data"
done
rm -rf "$scratch"
