"""What the subject-wise builders (CK+, JAFFE, BU-3DFE) share.

A config that splits by subject (hold-out or k-fold), the configs every such
builder offers, an image reader that names the file it cannot read, and a base
builder whose examples are image files of known subjects.
"""

import dataclasses

from keras_sgm.data._builder import ExpressionConfig, default_configs, read_image, tfds
from keras_sgm.data.expressions import SkipCounter, class_index, gray_square, subject_split


@dataclasses.dataclass(eq=False)
class SubjectSplitConfig(ExpressionConfig):
    """A builder config that splits a dataset by subject: hold-out or k-fold.

    Args:
        name: str; the config name (`make` derives it from the fields).
        image_size: int, default 48; images are gray squares this many pixels a side.
        test_fraction: float, default 0.2; share of subjects in `test` (ignored
            when `folds` is set).
        val_fraction: float, default 0.0; share of subjects in `validation`
            (the split exists only when this is above 0).
        folds: optional int k; subjects are dealt into k folds (by a hash of
            their id) and fold number `fold` is `test`.
        fold: int, default 0; which fold is `test` when `folds` is set.

    Examples:
        >>> SubjectSplitConfig.make(image_size=64, folds=10, fold=3).name
        '64px_fold3of10'
        >>> SubjectSplitConfig.make(val_fraction=0.1).name
        '48px_val10'

    Reference:
        The subject-independent protocol of Lucey et al., "The Extended
        Cohn-Kanade Dataset (CK+)", CVPR Workshops 2010.
    """

    test_fraction: float = 0.2
    val_fraction: float = 0.0
    folds: int | None = None
    fold: int = 0

    @classmethod
    def make(cls, image_size=48, dataset=None, **fields):
        """A config named after its fields, e.g. `48px_fold3of10` or `96px_test30_val10`.

        `dataset` (optional str) starts the config's description.
        """
        config = cls(name="", image_size=image_size, **fields)
        config.name = "_".join([f"{image_size}px", *config.name_parts()])
        size = f"{image_size}x{image_size} gray."
        config.description = ", ".join(filter(None, [dataset, config.split_description(), size]))
        return config

    def name_parts(self):
        """The parts of a `make` name after the image size (subclasses add their own)."""
        parts = []
        if self.folds is not None:
            parts.append(f"fold{self.fold}of{self.folds}")
        elif self.test_fraction != 0.2:
            parts.append(f"test{round(100 * self.test_fraction)}")
        if self.val_fraction:
            parts.append(f"val{round(100 * self.val_fraction)}")
        return parts

    def split_description(self):
        """The split rule in words, for config descriptions."""
        if self.folds is not None:
            text = f"Subject-wise {self.folds}-fold split, fold {self.fold} as test"
        else:
            text = f"Subject-wise split, {round(100 * self.test_fraction)} % of subjects as test"
        if self.val_fraction:
            text += f", {round(100 * self.val_fraction)} % as validation"
        return text


def subject_split_configs(description, config_class=SubjectSplitConfig, folds=10, **fields):
    """The configs of a subject-wise builder: `default_configs` hold-outs plus 48 px k-folds.

    Args:
        description: str; what the dataset is, the start of every config description.
        config_class: a `SubjectSplitConfig` subclass, default `SubjectSplitConfig`.
        folds: int, default 10; the folds of the `48px_fold<i>of<folds>` configs.
        **fields: other config fields shared by every config (e.g. `min_intensity`).

    Returns:
        list of configs: `48px` (the default), `64px`, `96px`, then
        `48px_fold0of10` ... `48px_fold9of10`.

    Examples:
        >>> [c.name for c in subject_split_configs("CK+", folds=2)]
        ['48px', '64px', '96px', '48px_fold0of2', '48px_fold1of2']
    """
    configs = [
        config_class(name=c.name, description=c.description, image_size=c.image_size, **fields)
        for c in default_configs(description)
    ]
    configs += [
        config_class.make(image_size=48, dataset=description, folds=folds, fold=fold, **fields)
        for fold in range(folds)
    ]
    return configs


def split_by_subject(records, config):
    """Group example records (dicts with a `subject`) into splits, whole subjects at a time.

    Args:
        records: list of dicts, each with a `"subject"` string.
        config: a `SubjectSplitConfig` (its `test_fraction`, `val_fraction`,
            `folds` and `fold` are passed to `subject_split`).

    Returns:
        dict split name -> list of records, with `train` and `test` always and
        `validation` when `config.val_fraction` is above 0; record order kept.

    Examples:
        >>> records = [{"subject": s} for s in "abcde"]
        >>> splits = split_by_subject(records, SubjectSplitConfig(name="x"))
        >>> sorted((name, len(part)) for name, part in splits.items())
        [('test', 1), ('train', 4)]
    """
    assignment = subject_split(
        [r["subject"] for r in records],
        test_fraction=config.test_fraction,
        val_fraction=config.val_fraction,
        folds=config.folds,
        fold=config.fold,
    )
    names = ["train", "validation", "test"] if config.val_fraction else ["train", "test"]
    splits = {name: [] for name in names}
    for record in records:
        splits[assignment[record["subject"]]].append(record)
    return splits


class SubjectSplitBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders whose examples are image files of known subjects.

    A subclass lists its examples in `_list_records(manual_dir, skips)`: dicts
    with `path`, `label` (a FER+ class name), `subject` and the keys named in
    `EXTRA_KEYS`, which become features too. Splits follow the config's
    subject-wise rule; rows skipped by rule are counted and reported.
    """

    EXTRA_KEYS = ()

    def _list_records(self, manual_dir, skips):
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        skips = SkipCounter(self.name, str(dl_manager.manual_dir))
        records = self._list_records(dl_manager.manual_dir, skips)
        skips.report()
        return {
            split: self._generate_examples(part)
            for split, part in split_by_subject(records, self.builder_config).items()
        }

    def _generate_examples(self, records):
        size = self.builder_config.image_size
        for record in records:
            features = {
                "image": gray_square(read_image(record["path"]), size),
                "label": class_index(record["label"]),
                "subject": record["subject"],
            }
            features.update({key: record[key] for key in self.EXTRA_KEYS})
            yield record["path"].name, features
