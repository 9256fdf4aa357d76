#!/usr/bin/env bash
# Reproduce the shipped model/lprnet.pth and model/LPRNet.onnx from scratch (CPU is enough).
#   bash train_shipped.sh [path/to/shared/data]     (default: ../shared/data)
# Real plates: plates/train (tight CCPD boxes) and plates_context/train (same plates with surroundings,
# framed like a detector would); generated plates: all 31 provinces, blue/green/yellow, with surroundings.
set -euo pipefail
cd "$(dirname "$0")"
DATA=${1:-../shared/data}
OUT=runs/shipped

python gen_plates.py --num 9000 --savepath "$OUT/synth" --types blue=6,green=2,yellow=2 --context --seed 7 --workers 2
python gen_plates.py --num 8000 --savepath "$OUT/synth2" --types blue=6,green=2,yellow=2 --seed 8 --workers 2
python gen_plates.py --num 14000 --savepath "$OUT/synth3" --types blue=4,green=3,yellow=3 --context --seed 9 --workers 2
python gen_plates.py --num 10000 --savepath "$OUT/synth4" --types blue=4,green=4,yellow=3 --context --seed 10 --workers 2
# stage 1: 6 epochs, one-cycle lr peaking at 2e-3
python train.py --train_img_dirs "$DATA/plates/train,$DATA/plates_context/train,$OUT/synth" \
    --test_img_dirs "$DATA/plates/val" --max_epoch 6 --batch_size 64 --lr 2e-3 --seed 0 --save_folder "$OUT/weights"
# stage 2: 3 more epochs with more generated plates (provinces), a fresh one-cycle peaking at 1e-3
python train.py --train_img_dirs "$DATA/plates/train,$DATA/plates_context/train,$OUT/synth,$OUT/synth2" \
    --test_img_dirs "$DATA/plates/val" --pretrained_model "$OUT/weights/last.pth" --resume_epoch 6 --max_epoch 9 \
    --batch_size 64 --lr 1e-3 --seed 1 --save_folder "$OUT/weights2"
# stage 3: 8 more epochs on fresh generated plates with surroundings (more green and yellow), peak 1e-3
python train.py --train_img_dirs "$DATA/plates/train,$DATA/plates_context/train,$OUT/synth3,$OUT/synth2" \
    --test_img_dirs "$DATA/plates/val" --pretrained_model "$OUT/weights2/last.pth" --resume_epoch 9 --max_epoch 17 \
    --batch_size 64 --lr 1e-3 --seed 2 --save_folder "$OUT/weights3"
# stage 4: 4 more epochs on real plates and fresh generated plates with surroundings, peak 5e-4
python train.py --train_img_dirs "$DATA/plates/train,$DATA/plates_context/train,$OUT/synth4" \
    --test_img_dirs "$DATA/plates/val" --pretrained_model "$OUT/weights3/last.pth" --resume_epoch 17 --max_epoch 21 \
    --batch_size 64 --lr 5e-4 --seed 3 --save_folder "$OUT/weights4"
# ship the last epoch (not the best one on val: val only watches), weights only
python -c "import sys; from lprnet.model import strip_checkpoint; strip_checkpoint(*sys.argv[1:])" \
    "$OUT/weights4/last.pth" model/lprnet.pth
python test.py --model model/lprnet.pth --imgpath "$DATA/plates/val" --export_onnx True --dynamic True \
    --onnx_path model/LPRNet.onnx
