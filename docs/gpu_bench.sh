#!/usr/bin/env bash
# One GPU, about 3 minutes, torch.compile included: the numbers of the README's performance section.
# GPT-2 small (12 x 768, vocab 50257, 124M) at T=1024, B=16 (the official per-device batch), bf16 autocast:
# no regularizer vs dispersion on every layer (our model compiled, losses.py eager, as train.py runs them)
# vs Hugging Face GPT2LMHeadModel + the official dispersion loss (eager, as the official scripts run it).
# Then, if time is left, the same with 256-token subsampling (the paper's setting; the compile cache is warm).
#
#     OUT=results bash docs/gpu_bench.sh        # writes $OUT/bench_gpu*.json and .log
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"

date -u
nvidia-smi -L
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
python -c "import sys, torch, transformers; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| cuda', torch.version.cuda, '| transformers', transformers.__version__)"
git rev-parse --short HEAD 2>/dev/null || echo "git: unknown"

SHAPE="--n_layer=12 --n_head=12 --n_embd=768 --vocab_size=50257 --block_size=1024 --batch_size=16"
RUN="--regs=dispersion --dtype=bfloat16 --steps=10 --warmup=2 --repeats=3"
start=$SECONDS

# the main run; if compiling fails or runs past its time, an eager run still gives overhead and memory
if ! timeout 150 python bench.py $SHAPE $RUN --compile=True --json="$OUT/bench_gpu.json" 2>&1 \
        | tee "$OUT/bench_gpu.log"; then
    echo "compiled run failed or timed out after $((SECONDS - start))s; eager run instead"
    timeout 60 python bench.py $SHAPE $RUN --compile=False --json="$OUT/bench_gpu_eager.json" 2>&1 \
        | tee "$OUT/bench_gpu_eager.log"
fi

# the paper's setting (256 random tokens per sequence and layer), only while the budget lasts
left=$((175 - (SECONDS - start)))
if [ "$left" -ge 45 ]; then
    timeout "$left" python bench.py $SHAPE $RUN --compile=True --reg_max_tokens=256 \
        --json="$OUT/bench_gpu_sub256.json" 2>&1 | tee "$OUT/bench_gpu_sub256.log" || echo "subsampled run cut short"
else
    echo "skipped the subsampled run: ${left}s left"
fi
echo "done in $((SECONDS - start))s"
