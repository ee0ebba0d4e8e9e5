#!/usr/bin/env bash
# The GPU comparison in one command of at most 9 minutes: NUDT-SIRST vs the SIRST-5K built from it,
# the same model, seed, steps and batch, both scored on NUDT-SIRST's 664 test images.
#
#   OUT=dir NUDT=path bash examples/gpu_check.sh                      # on one H100 (docs/experiment.md)
#   OUT=dir NUDT=path DEVICE=cpu TINY=1 bash examples/gpu_check.sh    # the same script on CPU, in minutes
#
# Steps: preflight (device, versions); the build with every core; a short calibration run on
# SIRST-5K that measures the step time; then `sirst-synth compare` of both arms at the number of
# steps that fits the time left, eager (torch.compile costs 60-120 s per process, more than it
# saves in a run of a few minutes), at the default precision (--precision auto). Each run has a
# time guard (--stop-after-min); a run it stops is scored all the same, and the table says
# "steps done / planned".
#
# Heavy files (the build, checkpoints) go to WORK, outside OUT. Into OUT go at most 8 small files:
# console.log, table.md, table.json, curves.png, calibration.json, the two runs' records
# (run-NUDT-SIRST.json, run-SIRST-5K.json) and gpu.csv (GPU utilisation and memory every 5 s).
set -euo pipefail

: "${OUT:?set OUT to the folder for the results}"
: "${NUDT:?set NUDT to NUDT-SIRST (a folder the caller carries)}"
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
WORK=${WORK:-${TMPDIR:-/tmp}/sirst-synth-gpu-check}
BUDGET_S=${BUDGET_S:-540}          # the whole script, from its start
MARGIN_S=${MARGIN_S:-30}           # kept for the table and copying the results
SCORE_S=${SCORE_S:-25}             # per run: process start, loading and scoring 664 test images, beyond its guard
SIRST_SYNTH=${SIRST_SYNTH:-python3 -m sirst_synth}
PYTHON=${PYTHON:-python3}
if [ "$TINY" = 1 ]; then
    TRAIN=(--width 4 --crop 32 --batch-size 4 --log-every 2)
    BUILD=(--total "${TINY_TOTAL:-24}")
    CALIBRATION_STEPS=3 STEP_MULTIPLE=2 MAX_STEPS=${MAX_STEPS:-6}
else
    TRAIN=(--width 32 --crop 256 --batch-size 256 --log-every 50)
    BUILD=()
    CALIBRATION_STEPS=15 STEP_MULTIPLE=50 MAX_STEPS=${MAX_STEPS:-4500}   # 4500: the paper's 1500 epochs x 3 steps
fi
TRAIN+=(--device "$DEVICE" --no-compile --precision "${PRECISION:-auto}" --save-every-min 60)

START=$(date +%s)
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/console.log") 2>&1
read -r -a CLI <<< "$SIRST_SYNTH"
elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "== [$(elapsed) s] $*"; }

say "preflight"
"$PYTHON" - "$DEVICE" <<'PY'
import os, platform, sys
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPU cores")
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("error: DEVICE=cuda but torch sees no CUDA device")
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}: {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
          f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}, CUDA {torch.version.cuda}")
PY
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total --format=csv -l 5 > "$OUT/gpu.csv" &
    MONITOR=$!
    trap 'kill $MONITOR 2> /dev/null || true' EXIT
else
    echo "no nvidia-smi on this machine: no GPU log" > "$OUT/gpu.csv"
fi

S5K=$WORK/SIRST-5K
if [ ! -f "$S5K/sirst-synth.json" ]; then
    say "build SIRST-5K from $NUDT"
    force=(); [ -d "$S5K" ] && force=(--resume)
    "${CLI[@]}" build --src "$NUDT" -o "$S5K" -j -1 "${BUILD[@]}" "${force[@]}"
fi

say "calibration: $CALIBRATION_STEPS steps on SIRST-5K"
rm -rf "$WORK/calibration"
"${CLI[@]}" train --data "$S5K" --eval-data "$NUDT" "${TRAIN[@]}" --steps "$CALIBRATION_STEPS" --eval-images 1 \
    -o "$WORK/calibration"
STEPS=$("$PYTHON" - "$WORK/calibration/metrics.json" "$BUDGET_S" "$(elapsed)" "$MARGIN_S" "$SCORE_S" \
        "$STEP_MULTIPLE" "$MAX_STEPS" "$OUT/calibration.json" <<'PY'
import json, sys

m = json.load(open(sys.argv[1]))
budget, spent, margin, score, multiple, most = (float(v) for v in sys.argv[2:8])
per_step = m["seconds_per_step"] or m["seconds"] / m["steps"]
per_run = (budget - spent - margin) / 2 - score - m["load_seconds"]
steps = int(min(most, max(multiple, per_run / per_step // multiple * multiple)))
guard = max(0.0, (budget - spent - margin) / 2 - score) / 60
json.dump({"seconds_per_step": per_step, "load_seconds": m["load_seconds"], "seconds_spent_before": spent,
           "seconds_per_run": round(per_run, 1), "steps": steps, "stop_after_min": round(guard, 3),
           "device": m["device_name"], "precision": m["precision"], "batch_size": m["batch_size"]},
          open(sys.argv[8], "w"), indent=2)
print(steps)
PY
)
GUARD=$("$PYTHON" -c "import json; print(json.load(open('$OUT/calibration.json'))['stop_after_min'])")
say "$STEPS steps per arm ($(cat "$OUT/calibration.json" | tr -d '\n ' | cut -c1-160)...)"

say "compare NUDT-SIRST vs SIRST-5K, $STEPS steps each, guard $GUARD min per run"
status=0
"${CLI[@]}" compare --arm "NUDT-SIRST=$NUDT" --arm "SIRST-5K=$S5K" --test "$NUDT" --seeds 0 --steps "$STEPS" \
    "${TRAIN[@]}" --stop-after-min "$GUARD" -j 1 -o "$WORK/study" || status=$?
[ "$status" = 0 ] || [ "$status" = 130 ] || exit "$status"

for name in table.md table.json curves.png; do cp "$WORK/study/$name" "$OUT/"; done
for arm in NUDT-SIRST SIRST-5K; do cp "$WORK/study/runs/$arm-s0/metrics.json" "$OUT/run-$arm.json"; done
say "done: $(ls "$OUT" | wc -l) files in $OUT"
