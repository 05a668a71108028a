"""Write the Gradio app as a Hugging Face Space folder, and optionally push it.

    python scripts/make_space.py space/ --model ORG/NAME            # write the folder only
    python scripts/make_space.py space/ --model ORG/NAME --push ORG/SPACE [--private]

The folder holds apps/app.py, apps/README.md (front matter: sdk gradio,
app_file app.py, models: [ORG/NAME]), apps/requirements.txt, a copy of the
keras_sgm package and the model-card template. Run it locally with
`cd space && python app.py`. Without --model the Space trains and serves the
default model (synthetic faces) on its first start. The token for --push comes
from `hf auth login` / HF_TOKEN, or the variable named by --token-env.
"""

import argparse
import os
import sys

from keras_sgm.serving import space


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("output", metavar="DIR", help="the folder to write")
    parser.add_argument("--model", help="the keras_sgm model repo the Space serves (ORG/NAME)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier Space in DIR")
    parser.add_argument("--push", metavar="ORG/SPACE", help="also upload it as this Space")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--token-env", metavar="VAR", help="read the token from this variable")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        out = space.write_space(args.output, model=args.model, overwrite=args.overwrite)
        print(f"Wrote the Space to {out}/ (run it with: cd {out} && python app.py).")
        if args.push:
            token = os.environ.get(args.token_env) if args.token_env else None
            if args.token_env and not token:
                raise ValueError(f"The environment variable {args.token_env} is unset or empty.")
            url = space.push_space(args.push, args.model, token=token, private=args.private)
            print(f"Pushed to {url}")
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
