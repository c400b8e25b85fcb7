#!/bin/bash
# The five scifact training runs of 2026-12-03 (quiet Intel Xeon, 2 threads), in the order they ran.
# Results: training.txt (wall times, validation), scifact.json / scifact-disjoint.json / zeroshot.json.
set -e
RS=.venv/bin/rankstack
M=.cache/models
run() { name=$1; shift; /usr/bin/time -f "$name wall %e s maxrss %M KB" $RS train biencoder --collection scifact --threads 2 --validation 50 --out $M/bi-$name "$@"; }
run adore --method adore --adore-depth 100 --batch-size 16 --epochs 6 --lr 3e-5 --validate-every 96 --time-budget 20
run pgrank --method adore --loss pgrank --adore-depth 100 --batch-size 16 --epochs 6 --lr 3e-5 --validate-every 96 --time-budget 20
run infonce --method infonce --n-negatives 3 --batch-size 16 --epochs 3 --lr 3e-5 --validate-every 48 --time-budget 25
# teacher: .cache/models/ce-scifact-v2 = the bench-lora full fine-tuning arm (benchmarks/lora.md)
run mmse --method margin-mse --teacher $M/ce-scifact-v2 --base $M/bi-infonce --n-negatives 3 --batch-size 16 --epochs 1 --lr 2e-5 --validate-every 24 --time-budget 12
run ar2 --method ar2 --negatives dense --n-negatives 3 --teacher $M/ce-scifact-v2 --batch-size 16 --epochs 1 --lr 3e-5 --time-budget 12
