#!/bin/sh
# Score a .npy with a model compiled by `mle-compile --target iree-cpu`, with no Python:
# only IREE's native runner `iree-run-module` (from the iree-base-runtime wheel, or an IREE
# build; 1.9 MB, links only libc and libstdc++).
#
#   deploy/iree/score.sh OUTDIR METHOD INPUT.npy OUTPUT.npy
#
# OUTDIR is mle-compile's output (model.vmfb, signature.json). INPUT.npy holds a float32
# C-order array whose row count is one of the compiled batch sizes (signature.json
# "batch_sizes"; pad a partial batch with zero rows and keep the first rows of the output).
# The function run is METHOD_b<rows>, e.g. predict_proba_b64. Set IREE_RUN_MODULE to the
# runner's path if it is not on PATH, and IREE_DEVICE to local-task for a multithreaded run
# (default local-sync: one thread, the fastest start).
set -eu
if [ "$#" -ne 4 ]; then
    echo "usage: $0 OUTDIR METHOD INPUT.npy OUTPUT.npy" >&2
    exit 2
fi
outdir=$1 method=$2 input=$3 output=$4
runner=${IREE_RUN_MODULE:-iree-run-module}
# The row count: the first number of 'shape': (...) in the .npy header.
rows=$(head -c 256 "$input" | tr -d '\000' | sed -n "s/.*'shape': (\([0-9][0-9]*\).*/\1/p")
if [ -z "$rows" ]; then
    echo "$0: could not read the shape of $input (expected a .npy file)" >&2
    exit 2
fi
exec "$runner" --module="$outdir/model.vmfb" --device="${IREE_DEVICE:-local-sync}" \
    --function="${method}_b${rows}" --input="@$input" --output="@$output"
