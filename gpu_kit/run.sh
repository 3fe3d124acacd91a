#!/usr/bin/env bash
# Check a bundle's chapters with nbval on a bare GPU machine: once on the course-gpu kernel
# (COURSE_DEVICE=cuda) and once on the course-cpu kernel, so a failure on the GPU pass alone points at
# the device, and one on both passes at that machine's other torch/Python. Run from the repository root:
#
#   bash gpu_kit/run.sh .gpu/ch01-03             on the GPU machine (carry .gpu/ch01-03)
#   bash gpu_kit/run.sh .gpu/ch01-03 --dry-run   here: every step but running the notebooks
#
# Steps: print the machine (nvidia-smi -L, Python, torch); check the manifest's sha256s; install the
# bundle's wheels into a private folder (pip --no-index --no-deps --target) next to course-utils
# metadata for the checkout (gpu_kit/checkout.py); check that every requirement of those wheels is met
# there or by the machine's own packages; import the chapters' modules; unpack the data into a private
# COURSE_DATA and rebuild the derived datasets with `course data`; register the course-gpu and
# course-cpu kernels as `make setup` does, under a private Jupyter path; run the two nbval passes
# (pytest-xdist, one worker per notebook, both passes at once); write the summary.
#
# It writes under $OUT (default .gpu/out/<bundle>): header.txt, steps.tsv, one log per step,
# junit-gpu.xml, junit-cpu.xml, summary.txt and summary.json. The summary is written however the run
# ends; the exit status is non-zero when a step or a cell failed. Settings (environment):
#   KIT_PYTHON        the interpreter (default: python3; with --dry-run, Python 3.12 from pyenv)
#   KIT_WORK          the private folder for wheels, data and kernels (default /tmp/gpu-kit-<bundle>)
#   KIT_PASSES        the passes to run (default "gpu cpu")
#   KIT_SEQUENTIAL=1  run the passes one after the other instead of at once
#   KIT_PASS_TIMEOUT  seconds allowed per pass (default 420), so the summary is written in time
set -u -o pipefail

usage() { echo "usage: bash gpu_kit/run.sh .gpu/<bundle> [--dry-run]" >&2; exit 2; }
[ $# -ge 1 ] || usage
BUNDLE=${1%/}; shift
DRY=0
for arg in "$@"; do
    case $arg in
        --dry-run) DRY=1 ;;
        *) usage ;;
    esac
done
[ -f "$BUNDLE/manifest.json" ] || { echo "no $BUNDLE/manifest.json: run make gpu-bundle (and carry $BUNDLE)" >&2; exit 2; }
[ -f gpu_kit/run.sh ] || { echo "run this from the repository root" >&2; exit 2; }

REPO=$(pwd)
NAME=$(basename "$BUNDLE")
DRY_PYTHON=/root/.pyenv/versions/3.12.1/bin/python3.12
if [ "$DRY" = 1 ]; then
    PY=${KIT_PYTHON:-$( [ -x "$DRY_PYTHON" ] && echo "$DRY_PYTHON" || command -v python3.12 || echo python3)}
    COURSE_PY=$REPO/.venv/bin/python  # has torch and packaging: runs what the 3.12 Python here cannot
else
    PY=${KIT_PYTHON:-python3}
    COURSE_PY=$PY
fi
WORK=${KIT_WORK:-/tmp/gpu-kit-$NAME}
OUT=${OUT:-$REPO/.gpu/out/$NAME}
PASSES=${KIT_PASSES:-gpu cpu}
SITE=$WORK/site
DATA=$WORK/data
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT" || exit 2
rm -f "$OUT"/steps.tsv "$OUT"/junit-*.xml "$OUT"/summary.* "$OUT"/*.log

# Everything below runs with the bundle's packages and the checkout's course_utils, and keeps Jupyter,
# IPython and matplotlib out of the home folder. (No MPLBACKEND: the kernels must pick the inline backend,
# or the figures' outputs go missing.)
# The dry run adds, last, stand-ins for the GPU machine's own packages (gpu_kit/standin.py).
STANDIN=$WORK/stand-in
export PYTHONPATH=$SITE:$REPO$([ "$DRY" = 1 ] && echo ":$STANDIN")
export COURSE_DATA=$DATA
export JUPYTER_PATH=$WORK/jupyter/share/jupyter
export JUPYTER_DATA_DIR=$WORK/jupyter-data JUPYTER_CONFIG_DIR=$WORK/jupyter-config JUPYTER_RUNTIME_DIR=$WORK/jupyter-runtime
export IPYTHONDIR=$WORK/ipython MPLCONFIGDIR=$WORK/matplotlib PIP_ROOT_USER_ACTION=ignore

# step NAME COMMAND...: run a command, log it to $OUT/NAME.log (and the terminal unless QUIET=1),
# and append "NAME status seconds note" to steps.tsv. Returns the command's status.
step() {
    local name=$1; shift
    local start=$SECONDS status=ok code=0
    echo "== $name"
    if [ "${QUIET:-0}" = 1 ]; then "$@" > "$OUT/$name.log" 2>&1; else "$@" 2>&1 | tee "$OUT/$name.log"; fi
    code=$?
    [ $code -eq 0 ] || status=FAILED
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" "${NOTE:-}$([ $code -eq 0 ] || echo " (exit $code)")" >> "$OUT/steps.tsv"
    return $code
}
skipped() { printf '%s\t%s\t%s\t%s\n' "$1" "${2:-skipped}" 0 "${3:-}" >> "$OUT/steps.tsv"; echo "== $1: ${2:-skipped} ${3:-}"; }

finish() {
    local code=$?
    "$PY" -m gpu_kit.summary "$OUT" --bundle "$NAME" || { echo "(the summary script failed; steps:)"; cat "$OUT/steps.tsv"; code=1; }
    grep -q '"result": "FAIL"' "$OUT/summary.json" 2>/dev/null && code=1
    echo "results in $OUT"
    exit $code
}
trap finish EXIT
stop() { echo "stopping: step $1 failed"; exit 1; }

CHAPTERS=$("$PY" -m gpu_kit.manifest get "$BUNDLE" chapters) || exit 2
read -r -a NOTEBOOKS <<< "$("$PY" -m gpu_kit.manifest get "$BUNDLE" notebooks)"
REBUILT=$("$PY" -m gpu_kit.manifest get "$BUNDLE" rebuilt)

header() {
    echo "bundle $NAME: $CHAPTERS$([ "$DRY" = 1 ] && echo ' (dry run)')"
    echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(cat /etc/hostname 2>/dev/null), $(nproc) CPUs"
    nvidia-smi -L 2>/dev/null || echo "nvidia-smi: no GPU listed"
    "$PY" -c 'import platform, sys; print("python", platform.python_version(), sys.executable)'
    if [ "$DRY" = 1 ]; then
        echo "torch: not imported (dry run: this Python has no torch)"
    else
        "$PY" -c 'import torch; print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPU available:", torch.cuda.is_available())'
    fi
}
header | tee "$OUT/header.txt"

# The course environment's Python for what the dry run's 3.12 cannot do (no torch there), without the
# private 3.12 folder on its path; on the GPU machine simply the kit's Python.
course_py() {
    if [ "$DRY" = 1 ]; then PYTHONPATH=$REPO "$COURSE_PY" "$@"; else "$PY" "$@"; fi
}

install_wheels() {
    "$PY" -m gpu_kit.manifest unpack "$BUNDLE" wheels "$WORK/wheels" &&
    "$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
        --target "$SITE" "$WORK"/wheels/*.whl &&
    "$PY" -m gpu_kit.checkout "$SITE" &&
    echo "installed $(ls -d "$SITE"/*.dist-info | wc -l) distributions into $SITE"
}

check_dependencies() {
    # Without the private folder on the path: on the GPU machine, "this-python" is the machine's own set.
    if [ "$DRY" = 1 ]; then
        PYTHONPATH=$REPO "$COURSE_PY" -m gpu_kit.deps check "$SITE" --bundle "$BUNDLE"
    else
        PYTHONPATH=$REPO "$PY" -m gpu_kit.deps check "$SITE" --bundle "$BUNDLE" --provided this-python
    fi
}

# The chapters' third-party modules and the runner; the dry run only the runner (its Python has no numpy).
import_modules() {
    local modules="nbval.plugin ipykernel.kernelapp ipywidgets xdist.plugin"
    [ "$DRY" = 1 ] || modules="$modules $("$PY" -m gpu_kit.manifest get "$BUNDLE" modules) course_utils"
    "$PY" - $modules <<'EOF'
import importlib, sys
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
print(f"imported {len(sys.argv) - 1 - len(failed)} of {len(sys.argv) - 1} modules")
print("\n".join(failed))
sys.exit(1 if failed else 0)
EOF
}

prepare_data() {
    "$PY" -m gpu_kit.manifest unpack "$BUNDLE" data "$DATA" || return 1
    if [ -n "$REBUILT" ]; then course_py -m course_utils.tools.cli data $REBUILT || return 1; fi
    course_py -m course_utils.tools.cli data --list
}

register_kernels() {
    # As `make setup` does, but under the private prefix that JUPYTER_PATH points at.
    "$PY" -m ipykernel install --prefix "$WORK/jupyter" --name course-cpu --display-name "Course (CPU)" \
        --env COURSE_DEVICE cpu --env PYTHONHASHSEED 0 &&
    "$PY" -m ipykernel install --prefix "$WORK/jupyter" --name course-gpu --display-name "Course (GPU)" \
        --env COURSE_DEVICE cuda --env PYTHONHASHSEED 0 &&
    "$PY" - <<'EOF'
import json, os, sys
from jupyter_client.kernelspec import KernelSpecManager
specs = KernelSpecManager().find_kernel_specs()
for name in ("course-gpu", "course-cpu"):
    if name not in specs or not specs[name].startswith(os.environ["JUPYTER_PATH"]):
        sys.exit(f"kernel {name} not found under {os.environ['JUPYTER_PATH']}: {specs}")
    spec = json.load(open(os.path.join(specs[name], "kernel.json")))
    print(f"{name}: {specs[name]}\n  argv {spec['argv']}\n  env {spec['env']}")
EOF
}

# nbval_command KIND PYTHON [PYTEST ARGS...]: the nbval command line of one pass, in the array NBVAL,
# with `make test`'s options. Plugins are named, not auto-loaded, so whatever else the machine's pytest
# has installed cannot interfere.
nbval_command() {
    local kind=$1 python=$2 device=cuda
    shift 2
    [ "$kind" = cpu ] && device=cpu
    NBVAL=(env COURSE_DEVICE=$device PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$python" -m pytest -p xdist.plugin -p nbval.plugin
           "${NOTEBOOKS[@]}" --nbval --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600
           --nbval-kernel-name "course-$kind" "$@")
}

# One worker per notebook (each notebook is one xdist scope), a junit xml per pass.
pass_command() { nbval_command "$1" "$PY" -n ${#NOTEBOOKS[@]} --dist loadscope --junitxml "$OUT/junit-$1.xml" -rfE; }

run_pass() {
    pass_command "$1"
    timeout --signal=INT --kill-after=20 "${KIT_PASS_TIMEOUT:-420}" "${NBVAL[@]}"
}

collect_only() {  # dry run: the same command, collected only (no kernel starts)
    nbval_command "$1" "$PY" --collect-only -q
    "${NBVAL[@]}" | tail -n 3
}

step verify "$PY" -m gpu_kit.manifest verify "$BUNDLE" || stop verify
if [ "$DRY" = 1 ]; then step stand-in course_py -m gpu_kit.standin "$STANDIN" || stop stand-in; fi
step install install_wheels || stop install
step dependencies check_dependencies || stop dependencies
step imports import_modules || stop imports
NOTE="rebuilt: ${REBUILT:-none}" step data prepare_data || stop data
step kernels register_kernels || stop kernels

for kind in $PASSES; do pass_command "$kind"; echo "nbval pass $kind:"; printf ' %q' "${NBVAL[@]}"; echo; done
if [ "$DRY" = 1 ]; then
    for kind in $PASSES; do
        step "collect-$kind" collect_only "$kind" || stop "collect-$kind"
        skipped "nbval-$kind" dry-run "the command above, not run"
    done
    exit 0
fi
if [ "${KIT_SEQUENTIAL:-0}" = 1 ]; then
    for kind in $PASSES; do QUIET=1 step "nbval-$kind" run_pass "$kind"; done
else
    for kind in $PASSES; do QUIET=1 step "nbval-$kind" run_pass "$kind" & done
    wait
fi
for kind in $PASSES; do echo "-- tail of nbval-$kind.log"; tail -n 12 "$OUT/nbval-$kind.log"; done
