#!/usr/bin/env bash
# The GPU check: one script for a single NVIDIA GPU without network access (docs/GPU_CHECK.md).
#
#   bash benchmarks/gpu_check.sh [--wheels DIR] OUT              # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry-run [--wheels DIR] OUT    # here, on the CPU, at toy sizes
#
# Steps, in this order, each with its own time limit, each writing OUT/<step>.log as it runs; OUT/summary.md is
# rewritten after every step (status, seconds, limit), so whatever the GPU run reaches comes back:
#   preflight      carried wheels installed, every dsfnet module imported, versions and device (JSON)
#   cuda_tests     the tests marked `cuda` (pytest -m cuda)
#   speed          benchmarks/speed.py: ResNet-101 at 600 px, bf16, baseline / cached / exact at n = 5, 13, 21
#   paper_scale    benchmarks/paper_scale.py: vid_r101_dsfnet training iterations (and the fusions' attention
#                  entropy at initialisation), cached inference at n = 21
#   train_check    benchmarks/train_check.py: 300 iterations of vid_r101_frame at 1000x600, bf16; loss falls
#   speed_compile  speed.py --compile at n = 21: torch.compile'd conv stacks against the eager numbers above
# The GPU run stops starting steps once BUDGET seconds (7.5 min) are spent: it ends within 8 minutes.
#
# --wheels DIR: wheels of what the GPU machine lacks (`python benchmarks/gpu_env.py wheels .whl .whl-dry`);
# default .whl (GPU) / .whl-dry (dry run). The dry run builds a fresh virtual environment with this machine's torch
# (--system-site-packages), installs the wheels from DIR alone (--no-index) and hides this machine's own copies
# of the carried packages, checks that .whl installs on the GPU's CPython 3.12, and runs every step on the CPU
# with DSFNET_CUDA_TESTS_ON_CPU=1 at toy sizes (configs/tiny.yaml, 128 px): its numbers measure nothing.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash benchmarks/gpu_check.sh [--dry-run] [--wheels DIR] OUT" >&2; exit 2; }
DRY=0 WHEELS= OUT=
while (($#)); do
    case $1 in
        --dry-run) DRY=1 ;;
        --wheels) (($# > 1)) || usage; WHEELS=$2; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $1" >&2; usage ;;
        *) [[ -z $OUT ]] || usage; OUT=$1 ;;
    esac
    shift
done
[[ -n $OUT ]] || usage
WHEELS=${WHEELS:-$( ((DRY)) && echo .whl-dry || echo .whl)}
if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "gpu_check.sh: no wheels in $WHEELS: run 'python benchmarks/gpu_env.py wheels .whl .whl-dry' where pip" \
         "reaches the package index, and carry .whl to the GPU machine" >&2
    exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/dsfnet_gpu_check.XXXXXX")
WORK=$SCRATCH/work  # synthetic data and stand-in weights, shared by paper_scale and train_check
STARTED=$SECONDS
SUMMARY=()

# --------------------------------------------------------------------------------------- environment
if ((DRY)); then
    BUDGET=14400 SCALE=10  # the CPU (maybe a shared one): every limit x10, no overall budget to speak of
    # without its own pip: the system pip (seen through --system-site-packages) installs into it
    python3 -m venv --without-pip --system-site-packages "$SCRATCH/venv" || exit 1
    PYTHON=$SCRATCH/venv/bin/python
    SITE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # --ignore-installed: into the venv even though this machine has them; then hide this machine's copies
    "$PYTHON" -m pip install -q --no-index --no-deps --ignore-installed --find-links "$WHEELS" \
        $("$PYTHON" benchmarks/gpu_env.py carried) || exit 1
    PYTHONPATH=$PWD "$PYTHON" benchmarks/gpu_env.py hide "$SITE" || exit 1
    export PYTHONPATH=$PWD DSFNET_CUDA_TESTS_ON_CPU=1
    DEVICE=cpu
else
    BUDGET=450 SCALE=1
    PYTHON=python3
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SCRATCH/site" \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=$PWD:$SCRATCH/site
    DEVICE=cuda
fi
export PYTHONUNBUFFERED=1

write_summary() {
    {
        echo "# GPU check $( ((DRY)) && echo '(dry run on the CPU, toy sizes: no measurement)')"
        echo
        echo "$(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
             "$((SECONDS - STARTED)) s so far of a $BUDGET s budget"
        echo
        echo "| step | status | seconds | limit s | log |"
        echo "|---|---|---:|---:|---|"
        printf '%s\n' "${SUMMARY[@]}"
    } >"$OUT/summary.md.tmp" && mv "$OUT/summary.md.tmp" "$OUT/summary.md"
}

# step NAME LIMIT COMMAND...: run COMMAND under `timeout` (LIMIT x SCALE seconds, at most what is left of the
# budget), output into OUT/NAME.log; a step that fails or times out does not stop the next ones
FAILED=0
step() {
    local name=$1 limit=$(($2 * SCALE)) started=$SECONDS status
    shift 2
    local left=$((BUDGET - (SECONDS - STARTED)))
    ((limit > left)) && limit=$left
    if ((limit < 20)); then
        echo "not run: the budget of $BUDGET s is spent" >"$OUT/$name.log"
        SUMMARY+=("| $name | not run (budget spent) | 0 | $limit | $name.log |")
        FAILED=1
        write_summary
        return
    fi
    echo "== $name (limit $limit s): $*" >&2
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    status=$?
    case $status in
        0) status=passed ;;
        124|137) status="TIMED OUT"; FAILED=1 ;;
        *) status="FAILED (exit $status)"; FAILED=1 ;;
    esac
    SUMMARY+=("| $name | $status | $((SECONDS - started)) | $limit | $name.log |")
    echo "== $name: $status in $((SECONDS - started)) s" >&2
    write_summary
}

# ------------------------------------------------------------------------------------------- steps
# the toy settings of the dry run
if ((DRY)); then
    SPEED=(--toy --rounds 1 --n 3 --measure 2 --measure-exact 1 --precision fp32 --threads 2)
    COMPILED=("${SPEED[@]}" --compile)
    TOY=(--config configs/tiny.yaml --size 160x128 --bn-batches 1)
    PAPER=("${TOY[@]}" --iterations 3 --opts model.backbone.weights=null)
    TRAIN=("${TOY[@]}" --iterations 20 --opts model.backbone.weights=null train.lr=0.02 train.clip_grad_norm=10)
else
    SPEED=(--rounds 1 --threads 8)
    COMPILED=("${SPEED[@]}" --n 21 --compile)
    PAPER=(--threads 8)
    TRAIN=(--threads 8 --opts data.num_workers=6)
fi

step preflight 60 "$PYTHON" benchmarks/gpu_env.py preflight
((DRY)) && step gpu_wheels 120 "$PYTHON" benchmarks/gpu_env.py check-wheels .whl
step cuda_tests 150 "$PYTHON" -m pytest -q -rA -m cuda -p no:cacheprovider $(grep -rl "pytest.mark.cuda" tests)
step speed 150 "$PYTHON" benchmarks/speed.py --device "$DEVICE" "${SPEED[@]}"
step paper_scale 120 "$PYTHON" benchmarks/paper_scale.py --device "$DEVICE" --work "$WORK" "${PAPER[@]}"
step train_check 150 "$PYTHON" benchmarks/train_check.py --device "$DEVICE" --work "$WORK" \
    --json "$OUT/train_check.json" "${TRAIN[@]}"
step speed_compile 150 "$PYTHON" benchmarks/speed.py --device "$DEVICE" "${COMPILED[@]}"
write_summary
rm -rf "$SCRATCH"
echo "gpu_check.sh: $( ((FAILED)) && echo 'some steps failed' || echo 'every step passed') in" \
     "$((SECONDS - STARTED)) s; results in $OUT (summary.md)" >&2
exit "$FAILED"
