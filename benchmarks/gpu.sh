#!/usr/bin/env bash
# GPU check of every rnntk method in one call (issue 19); about 8 minutes at most on one GPU.
#
#   bash benchmarks/gpu.sh OUTDIR          # on a machine with CUDA: GPU sizes
#   bash benchmarks/gpu.sh --cpu OUTDIR    # toy sizes on the CPU: checks syntax and flow (CI)
#
# Installs nothing: it runs the checkout itself (PYTHONPATH) with the python on PATH (or $PYTHON),
# which must already have torch (a CUDA build on a GPU machine) and rnntk's dependencies.
# Steps, each bounded by `timeout`:
#   1. the CUDA tests: pytest -m "cuda and not slow" tests/test_cuda_methods.py
#   2. each method's benchmark at GPU size (benchmarks/gpu_bench.py SECTION), <= 60 s each:
#      sofo, online, lyapunov, arnoldi, gq
#   3. smoke: every command once with --device cuda at tiny sizes
# Writes OUTDIR/gpu-table.md (also printed on stdout), OUTDIR/gpu-rows.jsonl (every measurement)
# and OUTDIR/logs/*.log. Exit 0 when every step ran and passed, 1 otherwise (the table is
# written either way), 2 on bad usage or a missing dependency.
set -u -o pipefail

mode=gpu
if [ "${1:-}" = "--cpu" ]; then mode=cpu; shift; fi
if [ $# -ne 1 ] || [ -z "${1:-}" ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash benchmarks/gpu.sh [--cpu] OUTDIR" >&2
    exit 2
fi
out=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
mkdir -p "$out/logs" || { echo "gpu.sh: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
rows="$out/gpu-rows.jsonl"
: > "$rows"
cd "$root" || exit 2
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" NO_COLOR=1 PYTHONUNBUFFERED=1

if [ "$mode" = gpu ]; then
    dev=cuda size=gpu budget=25 smoke_budget=60
    t_tests=100 t_smoke=85   # with t_sec: 445 s of limits + 2 s kill grace per step <= 8 min
    declare -A t_sec=([sofo]=60 [online]=40 [lyapunov]=40 [arnoldi]=60 [gq]=60)
else
    export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE   # toy sizes: one thread is fastest
    dev=cpu size=tiny budget=0.2 smoke_budget=120
    t_tests=60 t_smoke=240   # no 8-minute bound on the CPU flow; a busy 2-core machine needs it
    declare -A t_sec=([sofo]=60 [online]=60 [lyapunov]=60 [arnoldi]=60 [gq]=60)
fi

# preflight: the dependencies are there, and (gpu mode) torch sees a GPU
if ! "$PY" - "$dev" <<'EOF'
import importlib.util, sys
missing = [m for m in ("torch", "torchdiffeq", "torchsde", "typer", "rich", "numpy", "h5py", "scipy", "matplotlib", "tomli_w",
                       "sklearn", "PIL", "pytest") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("gpu.sh: missing Python packages: " + ", ".join(missing) + " (install the project's dependencies first)")
import torch
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit(f"gpu.sh: torch {torch.__version__} sees no CUDA device (use --cpu for the CPU flow)")
EOF
then
    exit 2
fi
device_name=$("$PY" -c "
import torch
print(f'{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}' if '$dev' == 'cuda' else f'CPU ({torch.get_num_threads()} threads), torch {torch.__version__}, toy sizes (--cpu)')")
echo "gpu.sh: $mode mode on $device_name; output in $out" >&2
t_all=$(date +%s)
failed=0

step() {  # step NAME LIMIT_S CMD...: run CMD under timeout, log it, record its exit status
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    timeout -k 2 "$limit" "$@" > "$out/logs/$name.log" 2>&1
    rc=$?
    if [ "$name" = tests ]; then
        [ "$rc" -eq 5 ] && rc=0   # pytest's "no tests collected" is not a failure
        local summary
        summary=$(grep -E "passed|failed|skipped|deselected|error" "$out/logs/tests.log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
        summary=$(printf '%s' "${summary:-no summary}" | tr -d '"\\')
        printf '{"section": "tests", "key": "cuda_tests", "value": %d, "setting": "%s, %d s"}\n' "$rc" "$summary" "$(( $(date +%s) - t0 ))" >> "$rows"
    fi
    if [ "$name" = smoke ] && [ "$rc" -eq 0 ] && grep -q '"key": "smoke_[a-z-]*", "value": [1-9]' "$rows"; then rc=1; fi
    printf '{"section": "%s", "exit": %d}\n' "$name" "$rc" >> "$rows"
    echo "gpu.sh: $name: exit $rc in $(( $(date +%s) - t0 )) s (limit $limit s)" >&2
}

# 1. the CUDA tests (the command-line end-to-end ones are step 3)
# 2. each method's benchmark at GPU size, bounded
# 3. every command end to end on the device (GPU_SH_SMOKE: a subset, e.g. "selftest")
# On a GPU the steps run one after another (timings must not share the device); with --cpu
# they run two at a time, since only the flow is checked there.
steps=(tests sofo online lyapunov arnoldi gq smoke)
for name in "${steps[@]}"; do
    case $name in
        tests) cmd=("$PY" -m pytest -q -p no:cacheprovider -m "cuda and not slow" tests/test_cuda_methods.py); limit=$t_tests ;;
        smoke) cmd=("$PY" benchmarks/gpu_bench.py smoke --device "$dev" --size "$size" --budget "$smoke_budget" --out "$rows"
                    --only ${GPU_SH_SMOKE:-all}); limit=$t_smoke ;;
        *) cmd=("$PY" benchmarks/gpu_bench.py "$name" --device "$dev" --size "$size" --budget "$budget" --out "$rows"); limit=${t_sec[$name]} ;;
    esac
    if [ "$mode" = gpu ]; then
        step "$name" "$limit" "${cmd[@]}"
    else  # two at a time
        step "$name" "$limit" "${cmd[@]}" &
        while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
    fi
done
wait
if grep -q '"exit": [1-9]' "$rows"; then failed=1; fi

"$PY" benchmarks/gpu_bench.py table "$rows" --device-name "$device_name" > "$out/gpu-table.md"
cat "$out/gpu-table.md"
echo "gpu.sh: done in $(( $(date +%s) - t_all )) s; table in $out/gpu-table.md" >&2
exit "$failed"
