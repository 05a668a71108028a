"""Serve keras_sgm's Gradio app from a clone: `python apps/app.py [--model ORG/NAME | DIR]`.

It runs the launcher a Hugging Face Space runs, keras_sgm/serving/space_template/app.py,
which chooses Keras' backend before Keras is imported and then calls
`keras_sgm.serving.app.main`; `python apps/app.py --help` lists the flags.
"""

import runpy
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parents[1] / "keras_sgm/serving/space_template/app.py"

if __name__ == "__main__":
    runpy.run_path(str(LAUNCHER), run_name="__main__")
