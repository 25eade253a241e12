#!/usr/bin/env bash
# The run that produced the shipped weights, on a GPU machine with many cores:
# generates the training set (C preprocessing through train/csac.py), then
# trains CSAC-Net-3D and the plain 3D ResNet baseline side by side on one GPU.
#   N=1200 EPOCHS=60 MINUTES=6 OUT=out train/device_train.sh
# DEADLINE=S (seconds from start) instead of MINUTES: train for what is left
# after generation, and fit the cosine schedule's length to it (--fit-epochs).
# TRAIN_ARGS: more train.py options for every run (e.g. "--aux-lesion 0.5").
# Needs: python3 with torch (CUDA), numpy, scipy, pillow; a libcsac.so built
# for the machine (CSAC_LIB; cmake -B build/portable -DCSAC_NATIVE_ARCH=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1200}; EPOCHS=${EPOCHS:-60}; MINUTES=${MINUTES:-6}; OUT=${OUT:-train/runs/device}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 CSAC_LIB=${CSAC_LIB:-$PWD/build/portable/libcsac.so}
work=${WORK:-/tmp/csac-train}
mkdir -p "$OUT" "$work"
t0=$(date +%s)
"$PY" train/synth/generate.py --out "$work/train" --n "$N" --seed 1 --workers "$(nproc)" \
  --keep-volumes none --preview 0 --tensors yes --real-frac "${REAL_FRAC:-0.2}" | tail -1 > "$OUT/gen_summary.json"
cp "$work/train/features.csv" "$OUT/train_features.csv"
echo "generated $N cases in $(( $(date +%s) - t0 )) s"
fit=()
if [ -n "${DEADLINE:-}" ]; then # leave ~75 s for loading, the layout probe and the export
  MINUTES=$("$PY" -c "print(round(($DEADLINE - $(( $(date +%s) - t0 )) - 75) / 60, 2))"); fit=(--fit-epochs)
  echo "training for $MINUTES min"
fi
common=(--data "$work/train" --device "${DEVICE:-cuda}" --batch "${BATCH:-10}" --epochs "$EPOCHS" \
        --max-minutes "$MINUTES" --patience "${PATIENCE:-40}" --seed 0 "${fit[@]}" ${TRAIN_ARGS:-})
# Several runs share the GPU: "arch:lr" pairs; the best CSAC-Net run (val AUC) ships.
pids=()
for cfg in ${CONFIGS:-csac:1e-3}; do
  arch=${cfg%%:*}; lr=${cfg##*:}
  extra=(); [ "$arch" = csac ] && extra=(--f16)
  "$PY" train/train.py "${common[@]}" --arch "$arch" --lr "$lr" --out "$work/$arch-$lr" "${extra[@]}" \
    > "$work/$arch-$lr.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
for cfg in ${CONFIGS:-csac:1e-3}; do
  arch=${cfg%%:*}; lr=${cfg##*:}
  echo "== $cfg"; tail -n 1 "$work/$arch-$lr.log"
done | tee "$OUT/runs_summary.txt"
cat "$work"/*.log > "$OUT/train_logs.jsonl"
best() { # arch -> run dir with the highest val AUC
  for f in "$work/$1"-*/summary.json; do
    [ -f "$f" ] || continue
    "$PY" -c "import json,sys;print(json.load(open(sys.argv[1]))['val_auc'], sys.argv[2])" "$f" "$(dirname "$f")"
  done | sort -g | tail -n 1 | cut -d' ' -f2
}
b=$(best csac); [ -n "$b" ] && cp "$b/csac.safetensors" "$OUT/csac_v1.safetensors" && cp "$b/summary.json" "$OUT/csac_summary.json"
r=$(best resnet); [ -n "$r" ] && cp "$r/resnet3d_f16.pt" "$OUT/" && echo "resnet: $r"
echo "csac: $b"
echo "total $(( $(date +%s) - t0 )) s"
