"""Test set-up: TensorFlow backend, two logical CPU devices, a quick hypothesis profile."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Two logical CPUs, so tf.distribute.MirroredStrategy has two replicas to test.
# This must run before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

settings.register_profile(
    "keras_sgm", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
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
