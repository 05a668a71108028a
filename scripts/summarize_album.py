"""Summarize a photo album with K representative images chosen by a saved keras_sgm model.

    python scripts/summarize_album.py photos/ --k 9 --model runs/train/model.keras
    python scripts/summarize_album.py photos/ --k 9 --model model.keras --output sheet.png

Reads every image of FOLDER (png, jpg, jpeg, bmp, gif, webp) at the model's
input size and channels, groups their embeddings with EM into K groups, and
writes a contact sheet of the groups' medoids, largest group first. The chosen
file names are printed one per line, in that order.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _input_size(model):
    """`(image_size, channels)` of a model taking square images `[batch, s, s, c]`."""
    for source in (model, getattr(model, "encoder", None)):  # SGMModel: its encoder's
        try:
            shape = tuple(source.input_shape)
            break
        except (AttributeError, ValueError):
            continue
    else:
        raise ValueError(f"cannot tell the input shape of the {type(model).__name__} model.")
    if len(shape) != 4 or shape[1] != shape[2] or shape[1] is None or shape[3] not in (1, 3):
        raise ValueError(
            f"the model must take square gray or RGB images [batch, s, s, 1 or 3]; its input "
            f"shape is {shape}."
        )
    return int(shape[1]), int(shape[3])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the album: a folder of images (sub-folders are ignored)")
    parser.add_argument("--k", type=int, required=True, help="how many images to choose")
    parser.add_argument("--model", required=True, help="a .keras file (e.g. from train.py)")
    parser.add_argument("--output", default="album_summary.png", help="the contact sheet PNG")
    parser.add_argument("--seed", type=int, default=0, help="random state of the clustering")
    parser.add_argument("--method", choices=("em", "kmeans"), default="em")
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files that cannot be read as images instead of stopping",
    )
    args = parser.parse_args(argv)

    import keras

    import keras_sgm  # noqa: F401 - registers the custom objects of saved models
    from keras_sgm.dgms.album import load_album, summarize_album
    from keras_sgm.viz import plot_contact_sheet

    try:
        path = Path(args.model)
        if not path.is_file():
            raise ValueError(f"No model file at {path}.")
        model = keras.saving.load_model(path)
        image_size, channels = _input_size(model)
        # load_album logs each skipped file (a warning, on stderr), naming it
        images, paths, _ = load_album(
            args.folder, image_size, channels, skip_unreadable=args.skip_unreadable
        )
        chosen = summarize_album(model, images, args.k, seed=args.seed, method=args.method)
        sheet = plot_contact_sheet(
            images[chosen], args.output, titles=[paths[i].name for i in chosen]
        )
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    for i in chosen:
        print(paths[i].name)
    print(f"Contact sheet of {len(chosen)} of {len(paths)} images: {sheet}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
