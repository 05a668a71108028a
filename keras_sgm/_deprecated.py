"""Old module paths kept for one release: each name resolves to its new home, with a warning."""

import importlib
import warnings


def moved(old, new_modules):
    """A module `__getattr__` for the old module `old`, looking names up in `new_modules` in turn.

    `from keras_sgm.training import TrainConfig` keeps working and warns once
    per name that it is now `keras_sgm.runs.config.TrainConfig`.
    """

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        for module_name in new_modules:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                warnings.warn(
                    f"{old}.{name} is deprecated and will be removed in keras_sgm 0.3; "
                    f"import it from {module_name}.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
