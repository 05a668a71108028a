import keras
import numpy as np
import pytest

import keras_sgm
from keras_sgm import backbones
from tests.testing import TestCase

NAMES = ["alexnet", "cvgg13", "fmpnet", "preact_resnet18", "resnet18"]

# Parameter counts (all weights, batch-norm statistics included) at 48x48x1 with a
# 64-d embedding: alexnet 13,001,472; cvgg13 6,980,096; fmpnet 6,132,800;
# preact_resnet18 11,206,528; resnet18 11,210,112.
PARAMS_48x48x1 = {
    "alexnet": (12_900_000, 13_100_000),
    "cvgg13": (6_900_000, 7_100_000),
    "fmpnet": (6_000_000, 6_250_000),
    "preact_resnet18": (11_100_000, 11_300_000),
    "resnet18": (11_100_000, 11_300_000),
}


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("float32")


def test_available_lists_the_five_names():
    assert backbones.available() == NAMES
    assert backbones.get("FMPNet").name == "fmpnet_encoder"  # names are case-insensitive


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_parameter_count(name):
    model = backbones.get(name)
    assert model.name == f"{name}_encoder"
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 64)
    low, high = PARAMS_48x48x1[name]
    assert low <= model.count_params() <= high
    assert model.layers[-1].name == "embedding"
    assert model.layers[-1].activation is keras.activations.linear

    small = backbones.get(name, input_shape=(40, 40, 3), embedding_dim=16)
    out = small(_images(2, (40, 40, 3)), training=False)
    assert tuple(out.shape) == (2, 16)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


class TestBackbones(TestCase):
    @pytest.mark.parametrize("name", NAMES)
    def test_call_config_fit_and_saving(self, name):
        """Finite embeddings; rebuilt from its config; a fit step reaches every weight; saves."""
        keras.utils.set_random_seed(0)
        model = backbones.get(name, input_shape=(32, 32, 1), embedding_dim=16)
        x = _images(32, (32, 32, 1))
        # Two batches of 16 holding 8 images of each of 2 classes. With fewer images per
        # class, SGMLoss's in-batch means sit so close to their members that the loss of a
        # random FMPNet (whose last batch norm spreads the embeddings) saturates near 0.
        y = np.tile([0, 1], 16)
        history = self.run_layer_test(
            model, x, (32, 16), y=y, fit_kwargs={"batch_size": 16, "shuffle": False}
        )
        assert 1e-4 < history["loss"][0] < 2.0
        assert model.name == f"{name}_encoder"
        assert model.layers[-1].name == "embedding"


def _dropout_rates(model):
    return {layer.name: layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"}


@pytest.mark.parametrize("name", ["alexnet", "cvgg13", "fmpnet"])
def test_dropout_is_configurable(name):
    rates = _dropout_rates(backbones.get(name, dropout=0.3))
    assert rates["fc1_dropout"] == rates["fc2_dropout"] == pytest.approx(0.3)
    off = {"dropout": 0.0, **({"conv_dropout": 0.0} if name == "cvgg13" else {})}
    assert _dropout_rates(backbones.get(name, **off)) == {}


def test_cvgg13_drops_a_quarter_after_each_stage():
    rates = _dropout_rates(backbones.get("cvgg13"))
    assert rates == {
        **{f"stage{i}_dropout": 0.25 for i in range(1, 5)},
        "fc1_dropout": 0.5,
        "fc2_dropout": 0.5,
    }


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="'vgg16'.*" + ", ".join(NAMES)):
        backbones.get("vgg16")


def test_unknown_keyword_names_the_accepted_ones():
    with pytest.raises(TypeError, match="'dropout'.*input_shape, embedding_dim"):
        backbones.get("resnet18", dropout=0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (31, 31, 1)}, r"\(31, 31, 1\) is too small.*32"),
        ({"input_shape": (64, 16, 3)}, r"\(64, 16, 3\) is too small"),
        ({"input_shape": (48, 48)}, r"three integers.*\(48, 48\)"),
        ({"input_shape": (48, 48, 0)}, r"at least 1 channel.*\(48, 48, 0\)"),
        ({"input_shape": (None, None, 1)}, r"three integers.*None"),
        ({"embedding_dim": 0}, r"embedding_dim must be an integer >= 1; received 0"),
        ({"embedding_dim": 8.0}, r"embedding_dim.*8\.0"),
        ({"dropout": 1.0}, r"dropout must be a float in \[0, 1\); received 1\.0"),
        ({"units": 0}, r"units.*received 0"),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs, message):
    name = "resnet18" if set(kwargs) <= {"input_shape", "embedding_dim"} else "fmpnet"
    with pytest.raises(ValueError, match=message):
        backbones.get(name, **kwargs)


class TestOnSphere(TestCase):
    def test_every_embedding_lies_at_the_radius_through_fit_and_saving(self):
        keras.utils.set_random_seed(0)
        encoder = backbones.on_sphere(backbones.get("fmpnet", input_shape=(32, 32, 1)), 3.0)
        assert encoder.name == "fmpnet_encoder" and encoder.output_shape == (None, 64)
        assert "embedding" in [layer.name for layer in encoder.layers]  # DGMS "features" finds it
        images = _images(16, (32, 32, 1))
        norms = np.linalg.norm(encoder.predict(images, verbose=0), axis=1)
        np.testing.assert_allclose(norms, 3.0, rtol=1e-5)
        history = self.run_layer_test(  # saved below, inside an SGMModel
            encoder,
            images,
            (16, 64),
            y=np.tile([0, 1], 8),
            fit_kwargs={"batch_size": 16},
            saving=False,
        )
        assert np.isfinite(history["loss"][0])
        norms = np.linalg.norm(encoder.predict(images, verbose=0), axis=1)
        np.testing.assert_allclose(norms, 3.0, rtol=1e-5)  # still on the sphere after training
        reloaded = self.run_model_saving_test(keras_sgm.SGMModel(encoder), images, atol=1e-5)
        reloaded_norms = np.linalg.norm(reloaded.predict(images, verbose=0), axis=1)
        np.testing.assert_allclose(reloaded_norms, 3.0, rtol=1e-5)  # float32: a few ulps

    def test_bad_radius(self):
        inputs = keras.Input((3,))
        encoder = keras.Model(inputs, keras.layers.Dense(2, name="embedding")(inputs))
        for radius in (0, -1.0, True, "3"):
            with pytest.raises(ValueError, match="radius must be a positive number"):
                backbones.on_sphere(encoder, radius)
