import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sgm.data import ClassBalancedSampler, augment, augmenter

_OFF = dict(flip=False, translate=0.0, zoom=0.0, rotate=0.0)


def _images(n=16, size=24, channels=1, seed=0):
    """Face-like stand-ins in [0, 1]: a bright oval with dark eyes on grey, plus noise."""
    rng = np.random.default_rng(seed)
    r, c = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    face = np.where((r / 0.35) ** 2 + (c / 0.28) ** 2 < 1, 0.8, 0.5)
    for eye in (-0.12, 0.12):
        face = np.where((r + 0.08) ** 2 + (c - eye) ** 2 < 0.05**2, 0.2, face)
    noise = 0.1 * rng.random((n, size, size, channels))
    return np.clip(face[None, :, :, None] + noise - 0.05, 0, 1).astype("float32")


def _batches(images, *labels, batch=8):
    return tf.data.Dataset.from_tensor_slices((images, *labels) if labels else images).batch(batch)


def _first(dataset):
    return next(iter(dataset))


LABELS = {
    "class ids": lambda n: np.arange(n, dtype="int64") % 4,
    "soft targets": lambda n: np.random.default_rng(1).dirichlet(np.ones(5), n).astype("float32"),
    "label pairs": lambda n: np.stack([np.arange(n) % 6, np.arange(n) % 3], axis=1),
}


@pytest.mark.parametrize("kind", list(LABELS))
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_dtypes_and_labels_pass_through(kind, channels):
    x = _images(16, channels=channels)
    y = LABELS[kind](16)
    out = list(augment(_batches(x, y), augmenter(seed=0)))
    assert len(out) == 2
    images = np.concatenate([b[0].numpy() for b in out])
    labels = np.concatenate([b[1].numpy() for b in out])
    assert images.shape == x.shape and images.dtype == np.float32
    np.testing.assert_array_equal(labels, y)  # same values, same order
    assert labels.dtype == y.dtype
    assert not np.allclose(images, x)


def test_nested_labels_and_sample_weights_pass_through():
    x, y, w = _images(8), np.arange(8), np.linspace(0.5, 1.0, 8).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, (y, {"pair": y[:, None] * [1, 2]}), w)).batch(4)
    images, (ids, extra), weights = _first(augment(data, augmenter(seed=0)))
    assert images.shape == (4, 24, 24, 1)
    np.testing.assert_array_equal(ids, y[:4])
    np.testing.assert_array_equal(extra["pair"], y[:4, None] * [1, 2])
    np.testing.assert_array_equal(weights, w[:4])


def test_images_alone_are_augmented():
    x = _images(8)
    images = _first(augment(tf.data.Dataset.from_tensor_slices(x).batch(8), augmenter(seed=0)))
    assert images.shape == x.shape and not np.allclose(images, x)


def test_sampler_batches_keep_their_labels_and_length():
    x, y = _images(40), np.arange(40) % 4
    plain = ClassBalancedSampler(x, y, samples_per_class=3, seed=5)
    other = ClassBalancedSampler(x, y, samples_per_class=3, seed=5)
    raw = list(plain.dataset(with_classes=True))
    augmented = augment(other.dataset(with_classes=True), augmenter(seed=0))
    assert augmented.cardinality().numpy() == other.steps_per_epoch == len(raw)
    for (x_raw, y_raw), (x_aug, y_aug) in zip(raw, augmented):
        assert y_aug.shape == (12, 2)
        np.testing.assert_array_equal(y_aug, y_raw)
        assert x_aug.shape == x_raw.shape and not np.allclose(x_aug, x_raw)


def test_values_stay_in_the_unit_interval():
    # Saturated images (0s and 1s) are where interpolation could overshoot.
    rng = np.random.default_rng(2)
    x = (rng.random((32, 24, 24, 3)) > 0.5).astype("float32")
    for fill_mode in ("reflect", "nearest"):
        layers = augmenter(translate=0.2, zoom=0.2, rotate=30.0, fill_mode=fill_mode, seed=1)
        images = _first(augment(_batches(x, batch=32), layers)).numpy()
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert 0.0 < images.mean() < 1.0


def test_no_black_borders_on_a_flat_image():
    # Every transform at its largest: reflect brings in copies of the image, never black.
    x = np.full((16, 24, 24, 1), 0.7, "float32")
    layers = augmenter(translate=0.3, zoom=0.3, rotate=45.0, seed=0)
    np.testing.assert_allclose(_first(augment(_batches(x, batch=16), layers)), x, atol=1e-5)
    black = augmenter(translate=0.3, zoom=0.0, rotate=45.0, fill_mode="constant", seed=0)
    assert _first(augment(_batches(x, batch=16), black)).numpy().min() == 0.0


def test_flip_only_gives_the_image_or_its_mirror():
    x = _images(64, seed=3)
    out = _first(augment(_batches(x, batch=64), augmenter(**{**_OFF, "flip": True}, seed=4)))
    out = out.numpy()
    same = np.all(out == x, axis=(1, 2, 3))
    mirrored = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 16 <= same.sum() <= 48 and 16 <= mirrored.sum() <= 48  # p = 1/2 each, n = 64


def test_translate_only_moves_the_face_but_keeps_its_brightness():
    x = _images(32, seed=5)
    layers = augmenter(**{**_OFF, "translate": 0.1}, seed=6)
    out = _first(augment(_batches(x, batch=32), layers)).numpy()
    moved = np.abs(out - x).mean(axis=(1, 2, 3))
    assert (moved > 0.01).mean() >= 0.9  # shifts of up to 2.4 pixels either way
    # reflect fills the border with the face's own pixels: the brightness stays
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=0.005)
    # what a black fill would do instead
    black = augmenter(**{**_OFF, "translate": 0.1}, fill_mode="constant", seed=6)
    darker = _first(augment(_batches(x, batch=32), black)).numpy()
    assert (x - darker).mean() > 0.03


def test_zoom_only_zooms_in():
    # A left-to-right ramp: zooming in keeps each row increasing and flattens its slope by
    # the zoom factor in [1 - zoom, 1]; zooming out (reflect) would fold the rows back.
    size = 33
    x = np.broadcast_to(
        np.linspace(0, 1, size, dtype="float32")[None, None, :, None], (32, size, size, 1)
    )
    out = _first(augment(_batches(x.copy(), batch=32), augmenter(**{**_OFF, "zoom": 0.2}, seed=7)))
    rows = out.numpy()[:, size // 2, :, 0]
    assert np.all(np.diff(rows, axis=1) >= -1e-6)
    slope = (rows[:, -1] - rows[:, 0]) / 1.0
    assert np.all(slope >= 0.8 - 1e-3) and np.all(slope <= 1 + 1e-6)
    assert slope.min() < 0.9  # the zoom does vary
    np.testing.assert_allclose(rows[:, size // 2], 0.5, atol=1e-5)  # about the centre


def test_rotate_only_turns_by_at_most_the_angle():
    # A horizontal bar through the centre; rotated by a, its end rows move by about
    # tan(a) * half-width, so at most tan(10 deg) * 16 = 2.8 pixels from the middle row.
    size = 33
    x = np.zeros((32, size, size, 1), "float32")
    x[:, size // 2, :, 0] = 1.0
    out = _first(augment(_batches(x, batch=32), augmenter(**{**_OFF, "rotate": 10.0}, seed=8)))
    out = out.numpy()[..., 0]
    rows = np.arange(size)[None, :]
    edge = out[:, :, 2]  # a column near the left edge
    centre_of_mass = (edge * rows).sum(axis=1) / edge.sum(axis=1) - size // 2
    assert np.all(np.abs(centre_of_mass) <= np.tan(np.radians(10)) * 14 + 0.5)
    assert np.abs(centre_of_mass).max() > 1.0  # some bars turned


def test_same_seed_same_batches_on_a_fresh_pipeline():
    x = _images(48, seed=9)

    def run(seed):
        return [b.numpy() for b in augment(_batches(x, batch=16), augmenter(seed=seed))]

    first, again = run(11), run(11)
    assert len(first) == 3
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(run(12)[0], first[0])


def test_unseeded_augmenters_map_in_parallel_and_differ():
    x, y = _images(32, seed=10), np.arange(32)
    runs = [list(augment(_batches(x, y, batch=8), augmenter())) for _ in range(2)]
    for run in runs:
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in run]), y)
        images = np.concatenate([images for images, _ in run])
        assert images.shape == x.shape and images.min() >= 0 and images.max() <= 1
    assert not np.allclose(runs[0][0][0], runs[1][0][0])


def test_each_epoch_draws_fresh_augmentations():
    data = augment(_batches(_images(16), batch=16), augmenter(seed=0))
    epoch_1, epoch_2 = _first(data).numpy(), _first(data).numpy()
    assert not np.allclose(epoch_1, epoch_2)


def test_all_amounts_zero_is_the_identity():
    x, y = _images(16), np.arange(16)
    layers = augmenter(**_OFF)
    assert layers.layers == []
    data = _batches(x, y)
    assert augment(data, layers) is data
    for (a, _), (b, _) in zip(data, augment(data, [])):
        np.testing.assert_array_equal(a, b)


def test_augmenter_builds_the_layers_it_names():
    layers = augmenter(translate=0.15, zoom=0.2, rotate=18.0, seed=3).layers
    flip, shift, zoom, turn = layers
    assert isinstance(flip, keras.layers.RandomFlip) and flip.mode == "horizontal"
    assert (shift.height_factor, shift.width_factor) == (0.15, 0.15)
    assert (zoom.height_lower, zoom.height_upper, zoom.width_factor) == (-0.2, 0.0, None)
    np.testing.assert_allclose(turn.factor, (-0.05, 0.05))
    assert {layer.fill_mode for layer in layers[1:]} == {"reflect"}
    assert [layer.seed for layer in layers] == [3, 4, 5, 6]
    assert {layer.dtype_policy.compute_dtype for layer in layers} == {"float32"}
    assert [type(layer).__name__ for layer in augmenter(flip=False, rotate=0).layers] == [
        "RandomTranslation",
        "RandomZoom",
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"flip": "yes"}, "flip must be True or False; received 'yes'"),
        ({"translate": -0.1}, r"translate .* \[0, 1\); received -0.1"),
        ({"translate": 1.0}, r"translate .* \[0, 1\); received 1.0"),
        ({"translate": True}, "translate must be a number"),
        ({"zoom": 1}, r"zoom .* \[0, 1\); received 1"),
        ({"zoom": float("nan")}, "zoom must be a number in"),
        ({"rotate": -5}, r"rotate .* \[0, 180\]; received -5"),
        ({"rotate": 200.0}, "rotate .* received 200.0"),
        ({"fill_mode": "black"}, "fill_mode must be one of .* received 'black'"),
        ({"seed": 1.5}, "seed must be an int or None; received 1.5"),
    ],
)
def test_bad_arguments_raise_with_their_names(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augmenter(**kwargs)


def test_augment_rejects_what_it_cannot_augment():
    x = _images(8)
    with pytest.raises(ValueError, match="float images"):
        augment(_batches((x * 255).astype("uint8"), np.arange(8)), augmenter())
    with pytest.raises(ValueError, match=r"batch the dataset first"):
        augment(tf.data.Dataset.from_tensor_slices((x, np.arange(8))), augmenter())
    with pytest.raises(ValueError, match="dict elements with keys"):
        augment(tf.data.Dataset.from_tensor_slices({"image": x}).batch(4), augmenter())
    with pytest.raises(ValueError, match="layers must be"):
        augment(_batches(x, np.arange(8)), "flip")
