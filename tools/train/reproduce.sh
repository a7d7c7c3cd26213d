#!/bin/sh
# Reproduces the bundled models (models/bundled/) end to end:
#   build the tools -> tokenizer corpus -> BPE vocabulary -> training shards (rendered, preprocessed
#   and tokenized by glimpse's own code) -> train both models (step 3: several hours on 2 cores) ->
#   export f16 GGUF pairs + parity references -> q8_0 text models -> held-out eval -> SHA256SUMS.
#
# Needs Debian's python3-torch (1.13) and python3-numpy (run with /usr/bin/python3), and an
# OpenBLAS (libopenblas0-openmp): Debian's torch falls back to the reference BLAS otherwise.
# Usage: tools/train/reproduce.sh [WORK_DIR]   (default: build-train/train-data; ~22 GB of shards)
#   CONFIG=small tools/train/reproduce.sh /tmp/quick   # minutes, for checking the pipeline
#   OUT=DIR      where the models go (default: models/bundled)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$ROOT/build-train/train-data}
OUT=${OUT:-$ROOT/models/bundled}
CONFIG=${CONFIG:-full}
PY=${PY:-/usr/bin/python3}
BUILD=${BUILD:-$ROOT/build-train}
T=$ROOT/tools/train
mkdir -p "$WORK" "$OUT"

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$BUILD" -j2 --target glimpse-traindata glimpse-scenes glimpse_cli glimpse-quantize
TD=$BUILD/tools/train/glimpse-traindata
GLIMPSE=$BUILD/tools/glimpse/glimpse
QUANTIZE=$BUILD/tools/quantize/glimpse-quantize

if [ "$CONFIG" = small ]; then N_SMOL=2000 N_LLAVA=2000 N_VAL=200; else N_SMOL=12000 N_LLAVA=12000 N_VAL=400; fi
N_SMOL_BIG=$((N_SMOL * 5)) N_LLAVA_BIG=$((N_LLAVA * 5)) N_SMOL_MID=$((N_SMOL * 2)) N_LLAVA_MID=$((N_LLAVA * 2))
VAL_SEEDS=1000000:$((1000000 + N_VAL))
CLIP_NORM="--mean 0.48145466,0.4578275,0.40821073 --std 0.26862954,0.26130258,0.27577711"

# 1. Vocabulary: merges learned from the text of 20000 training scenes.
"$TD" corpus --preset bundled --seeds 0:20000 --qa-per-image 8 --out "$WORK/corpus.jsonl"
$PY "$T/tokenizer.py" --corpus "$WORK/corpus.jsonl" --out-dir "$WORK/vocab"

# 2. Shards: training seeds from 0, held-out seeds from 1,000,000 (6 questions, as glimpse eval asks).
"$TD" build --layout smolvlm --vocab "$WORK/vocab/vocab-smolvlm.gguf" --seeds 0:$N_SMOL --qa-per-image 12 \
    --tile 80 --patch 10 --longest-edge 160 --tokens-per-chunk 16 --out "$WORK/smol_train" --threads 2
"$TD" build --layout smolvlm --vocab "$WORK/vocab/vocab-smolvlm.gguf" --seeds $VAL_SEEDS --qa-per-image 6 \
    --tile 80 --patch 10 --longest-edge 160 --tokens-per-chunk 16 --out "$WORK/smol_val" --threads 2
"$TD" build --layout llava --vocab "$WORK/vocab/vocab-llava.gguf" --seeds 0:$N_LLAVA --qa-per-image 12 \
    --tile 192 --patch 16 --tokens-per-chunk 144 $CLIP_NORM --out "$WORK/llava_train" --threads 2
"$TD" build --layout llava --vocab "$WORK/vocab/vocab-llava.gguf" --seeds $VAL_SEEDS --qa-per-image 6 \
    --tile 192 --patch 16 --tokens-per-chunk 144 $CLIP_NORM --out "$WORK/llava_val" --threads 2
# More training scenes for phases (i) and (j): the towers had learned the training set's glyphs by
# heart (train 1.00 / held-out 0.46 per-patch glyph accuracy, LLaVA), so stage 1 gets 5x the
# scenes; stage 2 caches tower features of every scene in memory, so it gets 2x.
"$TD" build --layout smolvlm --vocab "$WORK/vocab/vocab-smolvlm.gguf" --seeds 0:$N_SMOL_BIG --qa-per-image 12 \
    --tile 80 --patch 10 --longest-edge 160 --tokens-per-chunk 16 --out "$WORK/smol_train_big" --threads 2
"$TD" build --layout llava --vocab "$WORK/vocab/vocab-llava.gguf" --seeds 0:$N_LLAVA_BIG --qa-per-image 12 \
    --tile 192 --patch 16 --tokens-per-chunk 144 $CLIP_NORM --out "$WORK/llava_train_big" --threads 2
"$TD" build --layout smolvlm --vocab "$WORK/vocab/vocab-smolvlm.gguf" --seeds 0:$N_SMOL_MID --qa-per-image 12 \
    --tile 80 --patch 10 --longest-edge 160 --tokens-per-chunk 16 --out "$WORK/smol_train_mid" --threads 2
"$TD" build --layout llava --vocab "$WORK/vocab/vocab-llava.gguf" --seeds 0:$N_LLAVA_MID --qa-per-image 12 \
    --tile 192 --patch 16 --tokens-per-chunk 144 $CLIP_NORM --out "$WORK/llava_train_mid" --threads 2

# 3. Training, in the order and with the thread counts the bundled models were made with
#    (deterministic for a given machine, torch build and thread count):
#    a. stage 1 (vision towers) of both models at once, one thread each;
#    b. SmolVLM stage 2 (frozen tower: connector + decoder, 4000 steps) alone, two threads;
#    c. at once, one thread each: SmolVLM 2000 more stage-2 steps from (b) at a lower peak
#       learning rate, and LLaVA stage 2 (4000 steps, post_ln);
#    d. LLaVA 2000 more stage-2 steps from (c) at the lower peak learning rate, with the binding
#       loss (decoder layer 1's first two heads supervised onto the asked object), then 2000
#       more with it at peak 4e-4, twice;
#    e. both towers: stage 1 goes on for 4000 steps from the tower of (c) / (d) with fresh heads and
#       two more per-patch classes (the glyph written there, the shape whose center it shows),
#       f32 matmuls, one thread each, at once;
#    f. stage 2 goes on for 3000 steps from (c) / (d) with the tower of (e) under the same connector
#       (or projector) and decoder, which adapt to it (LLaVA with the binding loss), at once;
#    g. both towers: a third stage 1 from the tower of (e), 4000 and then 8000 steps (fresh heads
#       each), the glyph class on each glyph's center patch, half of every batch with text;
#    h. stage 2 again, 3000 steps from (f) on the tower of (g), half of every batch with text;
#    i. both towers: a fourth stage 1 from the tower of (g), 8000 steps, as (g) but on 5x the scenes;
#    j. stage 2 again, 3000 steps from (h) on the tower of (i), on 2x the scenes.
train() {  # train() SCRIPT LOG ARGS...: one training process; its log goes to $WORK/LOG
    S=$1 L=$2
    shift 2
    $PY "$T/$S" --config "$CONFIG" "$@" > "$WORK/$L" 2>&1
}
# Two trainings at once: `train ... & started` for each, then wait_all (fails if one of them did).
PIDS=
started() { PIDS="$PIDS $!"; }
wait_all() {
    for P in $PIDS; do wait "$P"; done
    PIDS=
}
SMOL="--data $WORK/smol_train --val $WORK/smol_val"
LLAVA="--data $WORK/llava_train --val $WORK/llava_val"
train train_smolvlm.py smolvlm-stage1.log --threads 1 $SMOL --out "$WORK/smolvlm-stage2.pt" --pretrain-only & started
train train_llava.py llava-stage1.log --threads 1 $LLAVA --out "$WORK/llava-stage2.pt" --pretrain-only & started
wait_all
train train_smolvlm.py smolvlm-stage2.log --threads 2 $SMOL --out "$WORK/smolvlm-stage2.pt" \
    --pretrained "$WORK/smolvlm-stage2.pt.tower.pt"
RESUME_STEPS=2000 TOWER2_STEPS=4000 STAGE2B_STEPS=3000 TOWER3_STEPS=4000 TOWER4_STEPS=8000
[ "$CONFIG" = small ] && RESUME_STEPS=100 TOWER2_STEPS=50 STAGE2B_STEPS=100 TOWER3_STEPS=50 TOWER4_STEPS=50
train train_smolvlm.py smolvlm-resume.log --threads 1 $SMOL --out "$WORK/smolvlm-resume.pt" \
    --resume "$WORK/smolvlm-stage2.pt" --set steps=$RESUME_STEPS --set lr=0.0007 --set warmup=50 & started
train train_llava.py llava-stage2.log --threads 1 $LLAVA --out "$WORK/llava-stage2.pt" \
    --pretrained "$WORK/llava-stage2.pt.tower.pt" & started
wait_all
BINDING="--set binding_weight=1 --set binding_layer=1"
train train_llava.py llava-resume.log --threads 1 $LLAVA --out "$WORK/llava-resume.pt" --resume "$WORK/llava-stage2.pt" \
    --set steps=$RESUME_STEPS --set lr=0.0007 --set warmup=50 $BINDING
train train_llava.py llava-resume2.log --threads 1 $LLAVA --out "$WORK/llava-resume2.pt" --resume "$WORK/llava-resume.pt" \
    --set steps=$RESUME_STEPS --set lr=0.0004 --set warmup=50 $BINDING
train train_llava.py llava-resume3.log --threads 1 $LLAVA --out "$WORK/llava-resume3.pt" --resume "$WORK/llava-resume2.pt" \
    --set steps=$RESUME_STEPS --set lr=0.0004 --set warmup=50 $BINDING
TOWER2="--pretrain-only --no-bf16 --set pretrain_steps=$TOWER2_STEPS --set pretrain_lr=0.0005 --set pretrain_glyphs_centers=1 --set seed=77"
train train_smolvlm.py smolvlm-tower2.log --threads 1 $SMOL --out "$WORK/smolvlm-tower2.pt" \
    --pretrain-from "$WORK/smolvlm-resume.pt" $TOWER2 & started
train train_llava.py llava-tower2.log --threads 1 $LLAVA --out "$WORK/llava-tower2.pt" \
    --pretrain-from "$WORK/llava-resume3.pt" $TOWER2 & started
wait_all
STAGE2B="--set steps=$STAGE2B_STEPS --set lr=0.001 --set warmup=100"
train train_smolvlm.py smolvlm-stage2b.log --threads 1 $SMOL --out "$WORK/smolvlm-stage2b.pt" --resume "$WORK/smolvlm-resume.pt" \
    --pretrained "$WORK/smolvlm-tower2.pt.tower.pt" $STAGE2B & started
train train_llava.py llava-stage2b.log --threads 1 $LLAVA --out "$WORK/llava-stage2b.pt" --resume "$WORK/llava-resume3.pt" \
    --pretrained "$WORK/llava-tower2.pt.tower.pt" $STAGE2B $BINDING & started
wait_all
GC="--pretrain-only --no-bf16 --set pretrain_lr=0.0005 --set pretrain_glyphs_centers=1 --set glyph_target=center \
    --set glyph_pos_weight=30 --set text_batch_share=0.5"
tower_stage1() {  # tower_stage1 NAME FROM STEPS SEED EVAL_EVERY [SHARD]: both towers at once, NAME from FROM
    for M in smolvlm llava; do
        [ $M = smolvlm ] && D=$SMOL || D=$LLAVA
        [ $M = smolvlm ] && [ -n "${6:-}" ] && D="--data $WORK/smol_$6 --val $WORK/smol_val"
        [ $M = llava ] && [ -n "${6:-}" ] && D="--data $WORK/llava_$6 --val $WORK/llava_val"
        train train_$M.py $M-$1.log --threads 1 $D --out "$WORK/$M-$1.pt" --pretrain-from "$WORK/$M-$2.pt.tower.pt" \
            $GC --set pretrain_steps=$3 --set seed=$4 --set eval_every=$5 & started
    done
    wait_all
}
tower_stage1 tower3 tower2 $TOWER3_STEPS 79 500
tower_stage1 tower4 tower3 $TOWER4_STEPS 80 1000
train train_smolvlm.py smolvlm-stage2c.log --threads 1 --no-bf16 $SMOL --out "$WORK/smolvlm-stage2c.pt" \
    --resume "$WORK/smolvlm-stage2b.pt" --pretrained "$WORK/smolvlm-tower4.pt.tower.pt" $STAGE2B \
    --set text_batch_share=0.5 & started
train train_llava.py llava-stage2c.log --threads 1 --no-bf16 $LLAVA --out "$WORK/llava-stage2c.pt" \
    --resume "$WORK/llava-stage2b.pt" --pretrained "$WORK/llava-tower4.pt.tower.pt" $STAGE2B $BINDING \
    --set text_batch_share=0.5 & started
wait_all
TOWER5_STEPS=8000
[ "$CONFIG" = small ] && TOWER5_STEPS=50
tower_stage1 tower5 tower4 $TOWER5_STEPS 81 1000 train_big
train train_smolvlm.py smolvlm-stage2d.log --threads 1 --no-bf16 --data "$WORK/smol_train_mid" --val "$WORK/smol_val" \
    --out "$WORK/smolvlm.pt" --resume "$WORK/smolvlm-stage2c.pt" --pretrained "$WORK/smolvlm-tower5.pt.tower.pt" $STAGE2B \
    --set text_batch_share=0.5 & started
train train_llava.py llava-stage2d.log --threads 1 --no-bf16 --data "$WORK/llava_train_mid" --val "$WORK/llava_val" \
    --out "$WORK/llava.pt" --resume "$WORK/llava-stage2c.pt" --pretrained "$WORK/llava-tower5.pt.tower.pt" $STAGE2B $BINDING \
    --set text_batch_share=0.5 & started
wait_all
grep -h "final held-out" "$WORK/smolvlm-stage2.log" "$WORK/smolvlm-resume.log" "$WORK/smolvlm-stage2b.log" \
    "$WORK/smolvlm-stage2c.log" "$WORK/smolvlm-stage2d.log" "$WORK/llava-stage2.log" "$WORK/llava-resume.log" "$WORK/llava-resume2.log" \
    "$WORK/llava-resume3.log" "$WORK/llava-stage2b.log" "$WORK/llava-stage2c.log" "$WORK/llava-stage2d.log"

# 4. Export: f16 pairs (bundled) and f32 text models (the source of the q8_0 files).
for M in smolvlm llava; do
    VAL=$WORK/smol_val
    [ $M = llava ] && VAL=$WORK/llava_val
    $PY "$T/export_gguf.py" --checkpoint "$WORK/$M.pt" --vocab "$WORK/vocab/vocab.json" --type f16 \
        --out-text "$OUT/scenes-$M-f16-text.gguf" --out-mmproj "$OUT/scenes-$M-f16-mmproj.gguf" \
        --reference "$OUT/scenes-$M-f16-reference.json" --val "$VAL" --reference-scenes 4
    $PY "$T/export_gguf.py" --checkpoint "$WORK/$M.pt" --vocab "$WORK/vocab/vocab.json" --type f32 \
        --out-text "$WORK/scenes-$M-f32-text.gguf" --out-mmproj "$WORK/scenes-$M-f32-mmproj.gguf"
    "$QUANTIZE" "$WORK/scenes-$M-f32-text.gguf" "$OUT/scenes-$M-q8_0-text.gguf" --type q8_0
done

# 5. Sample scene of the demo (the first held-out seed), held-out accuracy through glimpse, checksums.
mkdir -p "$OUT/samples"
"$BUILD/tools/scenes/glimpse-scenes" --preset bundled --seeds 1000000:1000001 --out "$OUT/samples" --quiet
for M in smolvlm llava; do
    for W in f16 q8_0; do
        "$GLIMPSE" eval -m "$OUT/scenes-$M-$W-text.gguf" --mmproj "$OUT/scenes-$M-f16-mmproj.gguf" \
            --scenes $VAL_SEEDS --preset bundled --json > "$WORK/eval-$M-$W.json"
    done
done
(cd "$OUT" && sha256sum scenes-*.gguf scenes-*-reference.json samples/* > SHA256SUMS)
echo "models in $OUT, logs and eval reports in $WORK"
