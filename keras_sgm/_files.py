"""Files written so that a reader never sees half of one: a temporary file, then a rename."""

import json
import os
from pathlib import Path


def replace_atomically(path, write):
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`.

    The temporary file keeps `path`'s suffix (Keras chooses the format by it).
    If `write` fails, `path` is untouched and the temporary file is removed.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path, payload):
    """Write `payload` as indented JSON (NaN allowed, as Python's json writes it) to `path`."""
    text = json.dumps(payload, indent=2, allow_nan=True) + "\n"
    return replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_model(model, path):
    """`model.save(path)` through a temporary file: `path` is never half written."""
    return replace_atomically(path, model.save)
