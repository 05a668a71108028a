"""The command line of a run: one flag per setting, a config file, and KEY=VALUE.

`scripts/train.py`, `scripts/benchmark.py` and `scripts/dgms_study.py` build
their parsers here, so a setting added to `TrainConfig` is a flag of every one.
The flags are the keys of the config's flat dict (`SETTINGS`): `--samples-per-class`
is `samples_per_class`, `--dgms-levels` the DGMS group's `levels`.
"""

import argparse

from keras_sgm.runs.config import SETTINGS, TrainConfig, field_type, read_settings_file
from keras_sgm.runs.rundir import RunDir


def add_config_flags(parser):
    """Add `--config FILE` and one `--flag` per setting (`SETTINGS`) to `parser`; returns it.

    Every flag defaults to None (unset), so a config file's value stands unless
    a flag is given; booleans are `store_true`.
    """
    parser.add_argument("--config", help="YAML or JSON file of settings")
    for key, field in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        kind = field_type(field)
        if kind is bool:
            parser.add_argument(flag, action="store_true", default=None)
        else:
            parser.add_argument(flag, type=kind, default=None, help=f"default: {field.default}")
    return parser


def config_parser(doc):
    """An `ArgumentParser` described by a script's docstring `doc`, with the config flags."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc.split("\n\n", 1)[1] if "\n\n" in doc else None,
    )
    return add_config_flags(parser)


def config_values(args):
    """The settings of parsed `args` (a flat dict): the config file's, the flags given on top.

    The `config` key is consumed; keys whose value is None (flags not given) are dropped.
    """
    args = dict(args)
    path = args.pop("config", None)
    values = read_settings_file(path) if path else {}
    values.update({k: v for k, v in args.items() if v is not None})
    return values


def config_from_args(args, **defaults):
    """The `TrainConfig` of parsed `args` (`config_values`), `defaults` beneath them.

    With `resume`, the interrupted run in `output` is continued with its own
    saved settings (`RunDir.resumed_config`): the flags may only extend it.
    """
    values = {**defaults, **config_values(args)}
    if values.get("resume"):
        output = values.pop("output", TrainConfig.output)
        return RunDir(output).resumed_config(**values)
    return TrainConfig.from_dict(values)


def with_settings(base, pairs):
    """`base` with `["key=value", ...]` applied, typed and checked by `TrainConfig.updated`."""
    kinds = {key: field_type(field) for key, field in SETTINGS.items()}
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE.")
        if value.lower() in ("none", "null"):
            value = None
        elif kinds.get(key) is bool and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        changes[key] = value
    return base.updated(**changes)
