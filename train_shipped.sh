#!/usr/bin/env bash
# Reproduce the shipped model/lprnet.pth and model/LPRNet.onnx from scratch (CPU is enough).
#   bash train_shipped.sh [path/to/shared/data]     (default: ../shared/data)
# Real plates: plates/train (tight CCPD boxes) and plates_context/train (same plates with surroundings,
# framed like a detector would); generated plates: all 31 provinces, blue/green/yellow, with surroundings, and
# two-row yellow plates in stage 11. train.py's --amp auto trains in bf16 on CPUs with AVX512-BF16 or AMX and in
# fp32 elsewhere, so weights can match the shipped ones bit for bit only on the kind of CPU each stage ran on, and
# stages 1-9 and the final mean not even there (README, 发布的模型是怎么训练的: 复现).
set -euo pipefail
cd "$(dirname "$0")"
DATA=${1:-../shared/data}
OUT=runs/shipped

python gen_plates.py --num 9000 --savepath "$OUT/synth" --types blue=6,green=2,yellow=2 --context --seed 7 --workers 2
python gen_plates.py --num 8000 --savepath "$OUT/synth2" --types blue=6,green=2,yellow=2 --seed 8 --workers 2
python gen_plates.py --num 14000 --savepath "$OUT/synth3" --types blue=4,green=3,yellow=3 --context --seed 9 --workers 2
python gen_plates.py --num 10000 --savepath "$OUT/synth4" --types blue=4,green=4,yellow=3 --context --seed 10 --workers 2
python gen_plates.py --num 16000 --savepath "$OUT/synth5" --types blue=4,green=4,yellow=3 --context --seed 12 --workers 2
python gen_plates.py --num 12000 --savepath "$OUT/synth6" --types blue=3,green=5,yellow=3 --context --seed 13 --workers 2
python gen_plates.py --num 8000 --savepath "$OUT/synth7" --types blue=3,green=4,yellow=3 --seed 14 --workers 2
python gen_plates.py --num 4000 --savepath "$OUT/synth8" --types blue=4,green=3,yellow=3 --context --seed 15 --workers 2
python gen_plates.py --num 10000 --savepath "$OUT/synth9" --types blue=4,green=4,yellow=3 --context --seed 41 --workers 2
python gen_plates.py --num 3000 --savepath "$OUT/synth9b" --types blue=3,green=4,yellow=3 --seed 42 --workers 2
python gen_plates.py --num 10000 --savepath "$OUT/synth10" --types blue=4,green=4,yellow=3 --context --seed 71 --workers 2
python gen_plates.py --num 3000 --savepath "$OUT/synth10b" --types blue=3,green=4,yellow=3 --seed 72 --workers 2
# stage 11's data sets: NAME SEED ONE_ROW_TYPES CROP_TYPES -> plates with surroundings, tight crops, and two-row
# yellow plates with surroundings
synth11() {
    python gen_plates.py --num 10000 --savepath "$OUT/synth11$1" --types "$3" --context --seed "$2" --workers 2
    python gen_plates.py --num 3000 --savepath "$OUT/synth11${1}_crops" --types "$4" --seed $(($2 + 1)) --workers 2
    python gen_plates.py --num 4000 --savepath "$OUT/synth11${1}_2row" --types yellow_double --context \
        --seed $(($2 + 2)) --workers 2
}
synth11 a 91 blue=4,green=4,yellow=3 blue=3,green=4,yellow=3
synth11 b 101 blue=4,green=4,yellow=3 blue=3,green=4,yellow=3
synth11 c 131 blue=4,green=4,yellow=3 blue=3,green=4,yellow=3
synth11 d 141 blue=3,green=6,yellow=2 blue=2,green=6,yellow=2

# stage N FIRST_EPOCH LAST_EPOCH PEAK_LR GENERATED_FOLDERS [TRAIN.PY OPTIONS]: one-cycle training on the real
# plates and the given generated folders (under $OUT) into $OUT/weightsN, fine-tuning stage N-1's last epoch
# (stage 1 starts from scratch); the options come last, so they override the defaults here (e.g. the seed N-1, or
# stage 11's --save_folder weights11_SEED: its eight runs all start from stage 10)
stage() {
    local n=$1 first=$2 last=$3 lr=$4 synth="" previous=() folder
    for folder in ${5//,/ }; do synth="$synth,$OUT/$folder"; done
    shift 5
    [ "$n" -gt 1 ] && previous=(--pretrained_model "$OUT/weights$((n - 1))/last.pth" --resume_epoch "$first")
    python train.py --train_img_dirs "$DATA/plates/train,$DATA/plates_context/train$synth" \
        --test_img_dirs "$DATA/plates/val" "${previous[@]}" --max_epoch "$last" --batch_size 64 --lr "$lr" \
        --seed $((n - 1)) --save_folder "$OUT/weights$n" "$@"
}
stage 1 0 6 2e-3 synth               # 6 epochs
stage 2 6 9 1e-3 synth,synth2        # 3 more with more generated plates (provinces)
stage 3 9 17 1e-3 synth3,synth2      # 8 more on fresh plates with surroundings (more green and yellow)
stage 4 17 21 5e-4 synth4            # 4 more on fresh plates with surroundings
stage 5 21 29 1e-3 synth5            # 8 more on fresh plates with surroundings
stage 6 29 34 5e-4 synth6            # 5 more, green the most common
stage 7 34 37 3e-4 synth7,synth6     # 3 more adding tight crops (a character at the crop's edge, like imgs/)
stage 8 37 40 2e-4 synth8            # 3 more, mostly real plates: loosely framed real plates read better
stage 9 40 44 5e-4 synth9,synth9b --seed 11   # 4 more on fresh plates: plates/val and loose blue crops read better
# 3 more on fresh plates at a low lr, more windows cutting into the first or last character: every real framing reads better
stage 10 44 47 2e-4 synth10,synth10b --seed 17 --near_windows 0.35 --cut_windows 0.6

# stage 11: eight short fine-tunes of stage 10 that add two-row yellow plates (rear plates of trucks and buses),
# two seeds on each data set, averaged into the shipped model (a "model soup"): each fine-tune reads two-row plates
# but moves one-row readings up or down with its seed and data; their mean keeps both (docs/experiments.md)
soup=()
for run in "20 a" "21 a" "22 b" "23 b" "24 c" "25 c" "27 d" "28 d"; do
    read -r seed name <<< "$run"
    stage 11 47 51 2e-4 "synth11$name,synth11${name}_crops,synth11${name}_2row" --seed "$seed" \
        --near_windows 0.35 --cut_windows 0.6 --save_folder "$OUT/weights11_$seed"
    soup+=("$OUT/weights11_$seed/last.pth")
done

# ship the mean of the eight last epochs (not the best ones on val: val only watches), weights only
python -c "import sys; from lprnet.model import average_checkpoints; average_checkpoints(sys.argv[2:], sys.argv[1])" \
    model/lprnet.pth "${soup[@]}"
python test.py --model model/lprnet.pth --imgpath "$DATA/plates/val" --export_onnx True --dynamic True \
    --onnx_path model/LPRNet.onnx
