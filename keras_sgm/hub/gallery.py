"""`Gallery`: the embeddings of a labelled image set, for retrieval; `gallery.npz` in a repo."""

import dataclasses

import numpy as np

from keras_sgm import _validation
from keras_sgm.hub._safe import safe_load_file
from keras_sgm.runs.datasets import load_splits
from keras_sgm.runs.rundir import RunDir


@dataclasses.dataclass(frozen=True)
class Gallery:
    """A retrieval gallery: embeddings with their class labels, optionally thumbnails.

    Args:
        embeddings: `[n, dim]` float32 embeddings.
        labels: `[n]` integer class ids (indices into the model's `class_names`).
        thumbnails: optional `[n, height, width, channels]` uint8 images. Publish
            them only where the data's licence allows (see `save_pretrained`).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    thumbnails: np.ndarray | None = None

    def __post_init__(self):
        embeddings = np.asarray(self.embeddings, "float32")
        labels = np.asarray(self.labels)
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(
                "A gallery needs embeddings [n, dim] and labels [n]; received shapes "
                f"{embeddings.shape} and {labels.shape}."
            )
        labels = _validation.class_ids(labels, "Gallery labels")
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("Gallery embeddings hold NaN or Inf values.")
        thumbnails = self.thumbnails
        if thumbnails is not None:
            thumbnails = np.asarray(thumbnails)
            if thumbnails.dtype != np.uint8 or thumbnails.ndim != 4:
                raise ValueError(
                    "Gallery thumbnails must be uint8 [n, height, width, channels]; received "
                    f"{thumbnails.dtype} {thumbnails.shape}."
                )
            if thumbnails.shape[0] != embeddings.shape[0]:
                raise ValueError(
                    f"{thumbnails.shape[0]} thumbnails for {embeddings.shape[0]} embeddings."
                )
        object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "labels", labels.astype("int64"))
        object.__setattr__(self, "thumbnails", thumbnails)

    @classmethod
    def from_images(cls, model, images, labels, thumbnails=False, batch_size=256):
        """Embed `images` with `model`; keep them as uint8 thumbnails if `thumbnails`.

        Float images are taken to lie in [0, 1] (keras_sgm's datasets).
        """
        embeddings = model.predict(images, batch_size=batch_size, verbose=0)
        kept = None
        if thumbnails:
            images = np.asarray(images)
            if images.ndim != 4:
                raise ValueError(
                    f"Gallery thumbnails need images [n, height, width, channels]; received "
                    f"inputs of shape {images.shape}."
                )
            if images.dtype != np.uint8:
                images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype("uint8")
            kept = images
        return cls(embeddings, labels, kept)

    @classmethod
    def from_run(cls, run_dir, split="test", thumbnails=False):
        """Embed a split of a training run's dataset with the run's model.

        Reads the run's `config.json` and `model.keras` and loads the data as
        `keras_sgm.runs.load_splits` does (the real datasets need their
        `data_dir`, as in training).

        Args:
            run_dir: a run directory written by `keras_sgm.runs.train`.
            split: str, default "test"; "train", "validation" or "test".
            thumbnails: bool, default False; keep the images as uint8 thumbnails.
        """
        run = RunDir(run_dir)
        config = run.train_config()
        train, val, test, _ = load_splits(config)
        splits = {"train": train, "validation": val, "test": test}
        if split not in splits:
            raise ValueError(f"Unknown split {split!r}; choose one of {list(splits)}.")
        if splits[split] is None:
            raise ValueError(f"The {config.dataset!r} dataset has no {split!r} split.")
        model = safe_load_file(run.model_path)
        return cls.from_images(model, *splits[split], thumbnails=thumbnails)

    def save(self, path):
        """Write an `.npz` (no pickled objects)."""
        arrays = {"embeddings": self.embeddings, "labels": self.labels}
        if self.thumbnails is not None:
            arrays["thumbnails"] = self.thumbnails
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path):
        """Read an `.npz` written by `save`, refusing pickled objects."""
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("embeddings", "labels") if k not in data.files]
                if missing:
                    raise ValueError(f"{path} lacks the arrays {missing}.")
                thumbnails = data["thumbnails"] if "thumbnails" in data.files else None
                return cls(data["embeddings"], data["labels"], thumbnails)
        except ValueError as error:
            raise ValueError(f"Cannot read the gallery {path}: {error}") from error
        except Exception as error:  # noqa: BLE001 - zip, zlib and EOF errors of a damaged file
            raise ValueError(
                f"Cannot read the gallery {path}: it is damaged or truncated "
                f"({type(error).__name__}: {error}); download or write it again."
            ) from error
