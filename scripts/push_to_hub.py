"""Publish a training run to the Hugging Face Hub, with a model card written from its results.

    python scripts/push_to_hub.py runs/resnet18_sgm --repo-id ORG/NAME [--private]
    python scripts/push_to_hub.py runs/resnet18_sgm --repo-id ORG/NAME --dry-run hub_repo/
    python scripts/push_to_hub.py runs/train --repo-id ORG/NAME --gallery test --thumbnails
    python scripts/push_to_hub.py runs/train --repo-id ORG/NAME --export onnx litert

The repo holds the model (Keras layout), the run's config, metrics.json, figures,
history.csv and, with --gallery, a retrieval gallery (see keras_sgm.hub.repo); with
--export, the model exported for serving (exports/model.onnx, exports/model.tflite,
exports/saved_model/; keras_sgm.export), which the card describes.
The token comes from `hf auth login` / HF_TOKEN, or from the environment
variable named by --token-env; it is never printed or written. --dry-run DIR
writes the repo into DIR and sends nothing (no token needed): inspect it, or
load it with keras_sgm.from_pretrained(DIR).
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sgm import deploy, hub  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run written by scripts/train.py")
    parser.add_argument("--repo-id", help="ORG/NAME on the Hub (required unless --dry-run)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument(
        "--token-env", metavar="VAR", help="read the token from this environment variable"
    )
    parser.add_argument(
        "--dry-run", metavar="DIR", help="only write the repo layout into DIR; send nothing"
    )
    parser.add_argument(
        "--gallery",
        choices=("train", "validation", "test"),
        help="publish the embeddings and labels of this split as a retrieval gallery",
    )
    parser.add_argument(
        "--thumbnails", action="store_true", help="put the split's images in the gallery too"
    )
    parser.add_argument(
        "--licence-allows-thumbnails",
        action="store_true",
        help="assert that the dataset's licence allows publishing its images",
    )
    parser.add_argument(
        "--export",
        nargs="+",
        default=[],
        choices=deploy.FORMATS,
        metavar="FORMAT",
        help=f"add the model exported as FORMAT ({', '.join(deploy.FORMATS)}) under exports/",
    )
    parser.add_argument("--license", help="the card's licence id, e.g. apache-2.0")
    parser.add_argument("--tag", action="append", default=[], help="an extra card tag")
    parser.add_argument("--commit-message")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier repo in the --dry-run DIR"
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if not args.dry_run and not args.repo_id:
            raise ValueError("--repo-id ORG/NAME is required (or --dry-run DIR to only write).")
        token = None
        if args.token_env:
            token = os.environ.get(args.token_env)
            if not token:
                raise ValueError(f"The environment variable {args.token_env} is unset or empty.")
        if args.thumbnails and not args.gallery:
            raise ValueError("--thumbnails needs --gallery SPLIT.")
        options = {
            "license": args.license,
            "tags": args.tag,
            "allow_thumbnails": True if args.licence_allows_thumbnails else None,
            "exports": args.export,
        }
        if args.gallery:
            options["gallery"] = hub.Gallery.from_run(
                args.run_dir, args.gallery, thumbnails=args.thumbnails
            )
        if args.dry_run:
            out = hub.save_pretrained(
                args.run_dir,
                args.dry_run,
                repo_id=args.repo_id,
                overwrite=args.overwrite,
                **options,
            )
            print(f"Wrote the repo layout to {out}/ (nothing was sent).")
            _say_exports(args.export)
            return 0
        url = hub.push_to_hub(
            args.run_dir,
            args.repo_id,
            token=token,
            private=args.private,
            commit_message=args.commit_message,
            **options,
        )
    except (ValueError, OSError, ImportError, RuntimeError) as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"Pushed to {url}")
    _say_exports(args.export)
    return 0


def _say_exports(formats):
    if formats:
        paths = [deploy.default_path(hub.EXPORTS_DIR, f).as_posix() for f in formats]
        print(f"With the model exported for serving: {', '.join(paths)} (see the card).")


if __name__ == "__main__":
    sys.exit(main())
