#!/usr/bin/env bash
# The GPU checks behind "Speed on a GPU" in scripts/README.md: the CUDA tests, then HalfCheetah-v5 at 256-256
# (batch 256, one gradient step per env step) with SB3 on the same GPU, sac_runner without CUDA graphs,
# with them (the default) and with them plus compile=true, a breakdown of one loop step, and the
# Pendulum-v1 learning check on the GPU.
#
#   pip install -e ".[mujoco,bench,test]"
#   bash scripts/gpu_benchmark.sh [out dir]        # needs a CUDA device; about 5 minutes on one H100
#
# Every run is its own process, one after the other; each part has a time limit so that one stuck part
# cannot take the others' time. Logs and the benchmark JSON go to the out dir (default outputs/gpu-benchmark).
set -u
out=${1:-outputs/gpu-benchmark}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
py=${PYTHON:-python}
bench() {  # bench <label> <steps> <impl> [overrides...]
    local label=$1 steps=$2 impl=$3
    shift 3
    timeout 240 "$py" scripts/benchmark.py --env HalfCheetah-v5 --impl "$impl" --seeds 0 --steps "$steps" \
        --target none --out "$out/$label" -- device=cuda algorithm.learning_starts=5000 \
        algorithm.eval_interval=1000000 algorithm.nb_evals=2 "$@" 2>&1 | tee "$out/$label.log" | grep -E "seed|ratio|FAIL"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
"$py" -c "import torch, gymnasium, mujoco; print('torch', torch.__version__, torch.cuda.get_device_name(), \
'| gymnasium', gymnasium.__version__, '| mujoco', mujoco.__version__)"
nproc

echo "== CUDA tests"
timeout 300 "$py" -m pytest -q -p no:cacheprovider tests/test_loop_steps.py 2>&1 | tee "$out/tests.log" | tail -4

echo "== HalfCheetah-v5 256-256 on the GPU (learning phase steps/s; learning_starts 5000)"
bench sb3 9000 sb3
bench eager 10000 sac_runner cuda_graph=false
bench graphs 20000 sac_runner
bench graphs-compiled 20000 sac_runner compile=true
bench graphs-seed1 20000 sac_runner seed=1

echo "== one loop step, HalfCheetah-v5 256-256"
timeout 120 "$py" scripts/loop_profile.py --env HalfCheetah-v5 --calls 2000 -- device=cuda 2>&1 | tail -7
timeout 120 "$py" scripts/loop_profile.py --env HalfCheetah-v5 --calls 500 -- device=cuda cuda_graph=false 2>&1 | tail -7

echo "== learning check on the GPU: Pendulum-v1, 5 seeds, -200 within 20000 steps"
timeout 240 "$py" scripts/learning_check.py --env Pendulum-v1 --target -200 --within 20000 --jobs 5 \
    --out "$out/learning-pendulum" -- device=cuda 2>&1 | tee "$out/learning-pendulum.log" | tail -8
