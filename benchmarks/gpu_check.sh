#!/usr/bin/env bash
# The GPU rows of docs/performance.md ("On a GPU"), in one run on a CUDA machine:
#   1. bench_inference.py --paper --slices 136: the paper's AHNet on the largest ATLAS
#      volume, liverseg against MONAI (voxels/s, GPU peak, host peak);
#   2. bench_data_pipeline.py --paper: one epoch of the paper's ahnet_multiclass training
#      (256x256x64 patches, float16 autocast, the config's 6 queue workers): iterations
#      per second and the share of the epoch spent waiting for data (target: under 10 %).
# Writes gpu.txt (the machine), the two TSVs and their logs to $OUT (default
# results/benchmarks/gpu). Where $PYTHON lacks liverseg's dependencies (a machine with
# CUDA PyTorch only), the wheels in .whl/ (benchmarks/gpu_wheels.sh) go to /tmp/site first.
#   DEVICE=cpu PYTHON=.venv/bin/python QUICK=1 benchmarks/gpu_check.sh   # a smoke test here
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-results/benchmarks/gpu}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SIZE=(--paper --slices 136)
PIPELINE=(--paper)
if [[ -n "${QUICK:-}" ]]; then SIZE=(--quick); PIPELINE=(--quick --steps 2); fi
export PYTHONUNBUFFERED=1
if ! "$PYTHON" -c "import monai, torchio, nibabel, edt, cc3d, jsonschema" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    for tarball in .whl/*.tar.xz; do tar -xJf "$tarball" -C /tmp/site; done  # unpacked wheels
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PYTHON" -c "import torch, monai, torchio; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'monai', monai.__version__, 'torchio', torchio.__version__)"
    nproc
} 2>&1 | tee "$OUT/gpu.txt"
status=0
timeout 300 "$PYTHON" benchmarks/bench_inference.py "${SIZE[@]}" --device "$DEVICE" --out "$OUT/inference_paper_136.tsv" \
    2>&1 | tee "$OUT/inference.log" || status=$?
timeout 420 "$PYTHON" benchmarks/bench_data_pipeline.py "${PIPELINE[@]}" --device "$DEVICE" --out "$OUT/data_pipeline_paper.tsv" \
    2>&1 | tee "$OUT/data_pipeline.log" || status=$?
exit "$status"
