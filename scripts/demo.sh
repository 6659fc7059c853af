#!/usr/bin/env bash
# make demo: convert the embedded digits, train LeNet, evaluate on the held-out split.
set -euo pipefail
export TF_CPP_MIN_LOG_LEVEL=2
PY=${PY:-python}
DATA=${DEMO_DATA_DIR:-/tmp/fastnn_demo/digits}
TRAIN=${DEMO_TRAIN_DIR:-/tmp/fastnn_demo/train_lenet}
MIN_TOP1=${DEMO_MIN_TOP1:-0.95}
start=$(date +%s)

"$PY" images/datasets/download_and_convert_data.py --dataset_name=digits --dataset_dir="$DATA"
rm -rf "$TRAIN"
"$PY" train_image_classifiers.py --task_type=pretrain --enable_paisoar=False \
  --dataset_name=digits --dataset_dir="$DATA" --model_name=lenet --train_dir="$TRAIN" \
  --batch_size=32 --optimizer=momentum --learning_rate=0.01 --stop_at_step=600 \
  --log_loss_every_n_iters=100 --save_checkpoints_steps=300 --random_seed=1
"$PY" eval_image_classifier.py --checkpoint_path="$TRAIN" --dataset_name=digits \
  --dataset_dir="$DATA" --dataset_split_name=test --model_name=lenet \
  --output_json="$TRAIN/eval_test.json"
"$PY" - "$TRAIN/eval_test.json" "$MIN_TOP1" "$start" <<'PYEOF'
import json, sys, time
result = json.load(open(sys.argv[1]))
need = float(sys.argv[2])
took = time.time() - float(sys.argv[3])
print("demo: lenet on digits, held-out top-1 %.2f%% (%d images), %.0f s in all"
      % (100 * result["top1"], result["count"], took))
if result["top1"] < need:
    sys.exit("demo: top-1 %.4f is below the %.2f the demo promises" % (result["top1"], need))
PYEOF
