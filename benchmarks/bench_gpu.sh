#!/usr/bin/env bash
# The core and scale benchmarks on an accelerator, written to benchmarks/results/<platform>/
# (each JSON records the device in "machine"). The CPU figures in benchmarks/results/ stay.
#
#   bash benchmarks/bench_gpu.sh            # core (beta_eff cost, coupling vs matmul) and scale
#   bash benchmarks/bench_gpu.sh --sizes 10,100,1000,10000
set -euo pipefail
cd "$(dirname "$0")/.."
platform=$(python -c "import jax; print(jax.devices()[0].platform)")
if [ "$platform" = "cpu" ]; then
  echo "bench_gpu.sh: JAX sees no accelerator (platform cpu); install jax[cuda12] or run on a TPU host" >&2
  exit 2
fi
export CAPJAX_BENCH_RESULTS="benchmarks/results/$platform"
mkdir -p "$CAPJAX_BENCH_RESULTS"
python -c "import jax; print('device:', jax.devices()[0].device_kind, 'x', jax.device_count())"
python benchmarks/bench_core.py
python benchmarks/bench_scale.py "$@"
echo "wrote $CAPJAX_BENCH_RESULTS"
