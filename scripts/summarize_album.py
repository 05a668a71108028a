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

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from keras_sgm.dgms.album import summarize_album_folder  # noqa: E402


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

    try:
        # load_album logs each skipped file (a warning, on stderr), naming it
        chosen, paths, sheet = summarize_album_folder(
            args.model,
            args.folder,
            args.k,
            args.output,
            seed=args.seed,
            method=args.method,
            skip_unreadable=args.skip_unreadable,
        )
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    for path in chosen:
        print(path.name)
    print(f"Contact sheet of {len(chosen)} of {len(paths)} images: {sheet}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
