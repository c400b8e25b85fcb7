# Perturbation-aware training (issue 18, defence 2): the control and augmented arms of benchmarks/robust.md.
# Both continue the bench-lora full fine-tuning arm (.cache/lora_bench/ce-full) for the same 60 steps.
set -e
export RANKSTACK_DATA=${RANKSTACK_DATA:-../shared/data}
rankstack robust augment --collection scifact --out .cache/robust/scifact-aug
for arm in control aug; do
  coll=scifact; [ $arm = aug ] && coll=.cache/robust/scifact-aug
  rankstack train reranker --collection $coll --base-model .cache/lora_bench/ce-full \
    --validation 0 --max-steps 60 --epochs 1 --batch-size 4 --lr 2e-5 --head-lr-multiplier 1 \
    --threads 1 --seed 1 --time-budget 20 --out .cache/models/ce-cont-$arm --report out/ce-cont-$arm.json
done
