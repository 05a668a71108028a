"""Test set-up: TensorFlow backend unless KERAS_BACKEND says otherwise, two logical CPU devices,
a quick hypothesis profile."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

if os.environ["KERAS_BACKEND"] == "tensorflow":
    # Two logical CPUs, so tf.distribute.MirroredStrategy has two replicas to test.
    # This must run before TensorFlow initialises its devices. Under another backend
    # (the second CI pass, KERAS_BACKEND=jax) keras_sgm imports TensorFlow after Keras:
    # the PyPI wheels of TensorFlow 2.21 and PyTorch 2.14 crash (segfault) when
    # TensorFlow is loaded before Keras has loaded torch.
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )

# Fewer property examples in the other backends' passes: each new shape recompiles under jax.jit,
# and the TensorFlow pass has already drawn 40 of each.
settings.register_profile(
    "keras_sgm",
    deadline=None,
    max_examples=40 if os.environ["KERAS_BACKEND"] == "tensorflow" else 10,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("keras_sgm")


@pytest.fixture(scope="session")
def app_repo(tmp_path_factory):
    """`(repo_dir, images, labels)`: a small SGM model on synthetic faces with its gallery."""
    from tests.app_support import make_repo

    return make_repo(tmp_path_factory.mktemp("app") / "repo")


@pytest.fixture(scope="session")
def app_examples(tmp_path_factory):
    """The app's example photos (`keras_sgm.serving.examples.write_examples`)."""
    from keras_sgm.serving.examples import write_examples

    return write_examples(tmp_path_factory.mktemp("examples"))
