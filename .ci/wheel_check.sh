#!/usr/bin/env bash
# The wheel works outside the clone: build it, install it into a fresh virtual environment
# in a temporary folder, and there run the example training (one epoch), a dry-run publish
# (model card from the template inside the wheel, with the ONNX export), a LiteRT export
# checked against Keras, and a Space folder (the Space's files
# inside the wheel). The environment reuses this machine's installed dependencies
# (--system-site-packages) and installs keras_sgm itself only from the wheel.
set -euo pipefail
CLONE="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python -m build --wheel --outdir "$WORK/dist" "$CLONE" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
python -m venv --system-site-packages "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install --quiet --no-deps --ignore-installed "$WORK"/dist/keras_sgm-*.whl

cd "$WORK"  # nothing of the clone on the path: keras_sgm must come from the wheel
"$PY" - "$WORK/venv" <<'PYTHON'
import sys
from pathlib import Path

import keras_sgm
from keras_sgm.hub import TEMPLATE
from keras_sgm.serving import space

where = Path(keras_sgm.__file__).resolve()
assert where.is_relative_to(Path(sys.argv[1]).resolve()), f"keras_sgm imported from {where}"
assert TEMPLATE.is_file(), f"no model-card template in the wheel: {TEMPLATE}"
missing = [n for n in space.SPACE_FILES if not (space.TEMPLATE_DIR / n).is_file()]
assert not missing, f"the wheel lacks the Space files {missing}"
print(f"keras_sgm {keras_sgm.__version__} from {where.parent}")
PYTHON
"$PY" "$CLONE/scripts/train.py" --epochs 1 --verbose 0 --output "$WORK/run"
"$PY" "$CLONE/scripts/push_to_hub.py" "$WORK/run" --repo-id keras-sgm/example \
    --dry-run "$WORK/repo" --export onnx
"$PY" "$CLONE/scripts/export.py" "$WORK/repo" --format litert --output "$WORK/exports" --check
"$PY" "$CLONE/scripts/make_space.py" "$WORK/space"
test -s "$WORK/repo/README.md" && test -f "$WORK/repo/keras_sgm.json"
test -s "$WORK/repo/exports/model.onnx" && test -s "$WORK/exports/model.tflite"
grep -q "Exported for serving" "$WORK/repo/README.md"
test -f "$WORK/space/app.py" && test -f "$WORK/space/README.md"
test -f "$WORK/space/requirements.txt"
test -f "$WORK/space/keras_sgm/hub/model_card_template.md"
echo "wheel check passed: training, push_to_hub.py --dry-run --export, export.py and make_space.py outside the clone"
