#!/usr/bin/env bash
# Train both stages of a cat-face model on a lent CUDA GPU, then evaluate and time it there.
# Not needed without a GPU. The steps, and why the data travels in parts: README, "Training on a lent GPU".
#
#   bash scripts/gpu_train.sh pack [--with-fid]   here: .gpu/payload.part-NN (<= 36 MiB each) + .gpu/SHA256SUMS
#   bash scripts/gpu_train.sh receive             there, once per carried part: keeps it in /tmp/gpu-payload
#   bash scripts/gpu_train.sh train               there: unpack, train both stages (benchmarks/gpu_train.py)
#   bash scripts/gpu_train.sh evaluate            there: bench evaluate + bench perf (needs --with-fid's weights)
#
# Files for $OUT (at most 8 come back): model.safetensors.part-NN, config.json, quality.json, logs.tgz.
set -euo pipefail

PART_SIZE=36M  # a part and the working tree (~26 MB) together stay under the 64 MiB a call carries
DATA=${DATA:-data/catfaces}
PAYLOAD=${PAYLOAD:-/tmp/gpu-payload}
WORK=${WORK:-/tmp/gpu-work}  # outlives a call while the machine stays warm
export PYTHONUNBUFFERED=1 MASKGIT_BENCH_HOME=${MASKGIT_BENCH_HOME:-$WORK/bench-home}

pack() {
    [[ -d $DATA/train && -d $DATA/val && -d $DATA/test/gt ]] || { echo "pack: $DATA is not a built benchmark" >&2; exit 2; }
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    rm -rf .gpu && mkdir -p .gpu
    local extra=()
    if [[ ${1:-} == --with-fid ]]; then
        local weights
        weights=$(python -c 'from bench.fid import resolve_inception_weights; print(resolve_inception_weights())')
        extra=(-C "$(dirname "$weights")" --transform "s|^$(basename "$weights")\$|inception.pth|" "$(basename "$weights")")
    fi
    # test_gt.csv (32 MB) stays behind: the gt/ PNGs hold the same ground truth and win over it
    tar -cf - --exclude=test_gt.csv -C "$(dirname "$DATA")" "$(basename "$DATA")" "${extra[@]}" |
        split -b "$PART_SIZE" -d - .gpu/payload.part-
    (cd .gpu && sha256sum payload.part-* >SHA256SUMS)
    ls -l .gpu
}

receive() {
    mkdir -p "$PAYLOAD"
    cp .gpu/SHA256SUMS "$PAYLOAD/"
    for part in .gpu/payload.part-*; do [[ -e $part ]] && cp "$part" "$PAYLOAD/"; done
    (cd "$PAYLOAD" && sha256sum -c --ignore-missing SHA256SUMS)
    echo "received $(ls "$PAYLOAD" | grep -c part-) of $(grep -c part- "$PAYLOAD/SHA256SUMS") parts"
}

setup() {
    if compgen -G ".whl/*.whl" >/dev/null; then  # packages the lent machine lacks (torch-fidelity)
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    if [[ ! -d $WORK/data ]]; then
        (cd "$PAYLOAD" && sha256sum -c --quiet SHA256SUMS) || { echo "parts missing: receive them all first" >&2; exit 2; }
        mkdir -p "$WORK/data" && cat "$PAYLOAD"/payload.part-* | tar -xf - -C "$WORK/data"
    fi
    BENCH_DATA=$WORK/data/$(basename "$DATA")
    if [[ -f $WORK/data/inception.pth ]]; then export MASKGIT_BENCH_INCEPTION=$WORK/data/inception.pth; fi
}

bench() { python3 -m cli "$@"; }

train() {
    setup
    : "${OUT:?OUT: the folder whose files come back}"
    local fid=()
    [[ -n ${MASKGIT_BENCH_INCEPTION:-} ]] && fid=(--fid-images 500)
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$WORK/gpu.txt"
    python3 -m benchmarks.gpu_train --data "$BENCH_DATA" --out "$WORK/run" "${fid[@]}" "$@" 2>&1 | tee "$WORK/train.log"
    split -b 15M -d "$WORK/run/model/model.safetensors" "$OUT/model.safetensors.part-"
    cp "$WORK/run/model/config.json" "$OUT/"
    tar -czf "$OUT/logs.tgz" -C "$WORK" gpu.txt train.log run/train-log.jsonl
}

evaluate() {
    setup
    : "${OUT:?OUT: the folder whose files come back}"
    [[ -n ${MASKGIT_BENCH_INCEPTION:-} ]] || { echo "evaluate: no Inception weights (pack --with-fid)" >&2; exit 2; }
    bench evaluate --checkpoint "$WORK/run/model" --data "$BENCH_DATA" --steps 8 --sweet-spot 8 --device cuda \
        --out "$OUT/quality.json" 2>&1 | tee "$WORK/evaluate.log"
    bench perf --preset lab --limit 747 --steps 12 --data "$BENCH_DATA" --device cuda 2>&1 | tee "$WORK/perf.log"
    tar -czf "$OUT/logs.tgz" -C "$WORK" gpu.txt train.log run/train-log.jsonl evaluate.log perf.log
}

case ${1:-} in
    pack) shift; pack "$@" ;;
    receive) receive ;;
    train) shift; train "$@" ;;
    evaluate) evaluate ;;
    *) echo "usage: bash scripts/gpu_train.sh pack [--with-fid] | receive | train [gpu_train options] | evaluate" >&2
       exit 2 ;;
esac
