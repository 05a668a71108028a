"""Gradio's `Image` and `Gallery` with files of their own per response (needs `keras-sgm[app]`).

Gradio names the file of an output image by its content and rewrites it in
place, so identical answers to concurrent requests share one file, which can be
served half-written (a "peer closed connection" under load). The `Image` and
`Gallery` here give every response a folder of its own inside Gradio's upload
folder, where Gradio serves files as they are (`OwnFiles`); the app's outputs
that show files use them.
"""

import contextlib
import shutil
import threading
import time
import uuid
from pathlib import Path


def import_gradio():
    """The `gradio` module, or an `ImportError` that says which extra installs it."""
    try:
        import gradio
    except ImportError as error:
        raise ImportError("keras_sgm's app needs Gradio: pip install 'keras-sgm[app]'.") from error
    return gradio


gr = import_gradio()


class OwnFiles:
    """A mixin for a Gradio output: the files of each response go to a new folder.

    The component's `GRADIO_CACHE` (where Gradio writes its files) reads, in
    the thread running `postprocess`, that response's folder, and everywhere
    else the shared upload folder. Response folders older than `MAX_AGE_S`
    are removed, at most once every `PRUNE_EVERY_S`.
    """

    MAX_AGE_S = 3600
    PRUNE_EVERY_S = 60  # not on every response: the folder holds up to an hour's answers
    _local = threading.local()
    _pruned_at = 0.0

    @property
    def GRADIO_CACHE(self):  # noqa: N802 - Gradio's attribute name
        own = getattr(OwnFiles._local, "folders", {}).get(id(self))
        return own or self.__dict__.get("_shared_cache")

    @GRADIO_CACHE.setter
    def GRADIO_CACHE(self, value):  # noqa: N802
        self._shared_cache = value

    def postprocess(self, value):
        root = Path(self._shared_cache) / "keras_sgm_responses"
        self._prune(root)
        folders = OwnFiles._local.__dict__.setdefault("folders", {})
        folders[id(self)] = str(root / uuid.uuid4().hex)
        try:
            return super().postprocess(value)
        finally:
            del folders[id(self)]

    @classmethod
    def _prune(cls, root):
        now = time.time()
        if now - OwnFiles._pruned_at < cls.PRUNE_EVERY_S or not root.is_dir():
            return
        OwnFiles._pruned_at = now
        old = now - cls.MAX_AGE_S
        for folder in root.iterdir():
            try:
                if folder.stat().st_mtime < old:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:  # removed meanwhile
                pass


@contextlib.contextmanager
def _no_stub_files():
    """Define Gradio component subclasses without the `.pyi` stub Gradio writes beside them.

    Gradio's component metaclass writes type stubs next to the defining module,
    a help for authors of custom components; here it would litter the package
    (or fail in a read-only install).
    """
    from gradio import component_meta

    write = getattr(component_meta, "create_or_modify_pyi", None)
    if write is not None:
        component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        if write is not None:
            component_meta.create_or_modify_pyi = write


with _no_stub_files():

    class Image(OwnFiles, gr.Image):
        """`gr.Image` with files of its own per response."""

    class Gallery(OwnFiles, gr.Gallery):
        """`gr.Gallery` with files of its own per response."""
