import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

import keras_sgm
from keras_sgm.losses import sgm_loss, triplet_loss
from tests import reference
from tests.testing import TestCase, jit, to_numpy, toy_data, value_and_grad


def _batch(seed, n=24, dim=5, ids=(0, 3, 40213), scale=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array(ids), size=n)
    x = (rng.normal(size=(n, dim)) * scale).astype("float32")
    return labels, x


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_sgm_loss_matches_numpy_with_absent_classes(sigma):
    # ids drawn from a set of 10 classes, so most classes are absent from the batch.
    labels, x = _batch(0, n=16, ids=tuple(range(0, 100, 10)))
    expected = reference.sgm_loss(labels, x, sigma)
    got = to_numpy(sgm_loss(labels, x, sigma))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert len(np.unique(labels)) < 10


def test_sgm_loss_soft_labels_match_numpy_and_one_hot_equals_hard():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 4)).astype("float32")
    votes = rng.integers(0, 5, size=(12, 8)).astype("float32")
    votes[:, 6:] = 0.0  # two classes absent everywhere
    votes[votes.sum(1) == 0, 0] = 1.0
    np.testing.assert_allclose(
        to_numpy(sgm_loss(votes, x)), reference.sgm_loss(votes, x), rtol=1e-4, atol=1e-6
    )
    hard = rng.integers(0, 4, size=12)
    one_hot = np.eye(8, dtype="float32")[hard]
    np.testing.assert_allclose(
        to_numpy(sgm_loss(one_hot, x)), to_numpy(sgm_loss(hard, x)), atol=1e-6
    )


@given(
    n=st.integers(2, 20),
    dim=st.integers(1, 12),
    n_classes=st.integers(1, 6),
    sigma=st.floats(0.2, 5.0),
    seed=st.integers(0, 2**16),
    offset=st.sampled_from([0, 7, 40213, -5]),
    column=st.booleans(),
)
def test_sgm_loss_property_matches_numpy(n, dim, n_classes, sigma, seed, offset, column):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n) * 3 + offset
    x = rng.normal(size=(n, dim)).astype("float32")
    given_labels = labels[:, None] if column else labels
    got = to_numpy(sgm_loss(given_labels, x, sigma))
    np.testing.assert_allclose(got, reference.sgm_loss(labels, x, sigma), rtol=1e-3, atol=1e-5)
    assert got.shape == (n,)
    assert np.all(got >= 0) and np.all(got <= 2.0 + 1e-6)


@given(seed=st.integers(0, 2**16), n=st.integers(3, 16))
def test_sgm_loss_invariant_to_label_values_and_translation(seed, n):
    labels, x = _batch(seed, n=n, ids=(0, 1, 2))
    renamed = np.array([40213, -4, 99])[labels]
    base = to_numpy(sgm_loss(labels, x))
    np.testing.assert_allclose(to_numpy(sgm_loss(renamed, x)), base, atol=1e-6)
    np.testing.assert_allclose(to_numpy(sgm_loss(labels, x + 1e3)), base, atol=2e-3)


def test_single_class_batch_gives_zero_loss_and_zero_gradient():
    x = np.random.default_rng(2).normal(size=(6, 3)).astype("float32")
    loss, grad = value_and_grad(lambda e: ops.mean(sgm_loss(np.full(6, 4), e)), x)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize(
    "scale,sigma", [(1e6, 1e-3), (1e8, 1.0), (1e-8, 1.0), (1.0, 1e4), (30.0, 0.01)]
)
def test_loss_and_gradient_finite_on_extreme_scales(scale, sigma):
    labels, x0 = _batch(3, n=20, ids=(0, 1, 2, 3), scale=scale)
    loss, grad = value_and_grad(lambda e: ops.mean(sgm_loss(labels, e, sigma)), x0)
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(
        float(loss), reference.sgm_loss(labels, x0, sigma).mean(), rtol=1e-3, atol=1e-4
    )


def test_far_apart_classes_do_not_underflow():
    # exp(-d^2 / 2) underflows to 0 for every class here; log space must keep it exact.
    x = np.array([[0, 0], [0, 100], [1000, 0], [1000, 100]], "float32")
    labels = np.array([0, 0, 1, 1])
    got = to_numpy(sgm_loss(labels, x))
    np.testing.assert_allclose(got, reference.sgm_loss(labels, x), atol=1e-6)
    assert np.all(np.isfinite(got))


def test_sgm_loss_compiled_matches_eager_value_and_gradient():
    """XLA on TensorFlow, jax.jit on JAX: the labels are traced tensors there."""
    labels, x0 = _batch(4, n=30, ids=(2, 5, 8))
    mean = lambda e, lab: ops.mean(sgm_loss(lab, e, 0.7))  # noqa: E731
    eager = value_and_grad(mean, x0, labels.astype("float32"))
    compiled = value_and_grad(mean, x0, labels.astype("float32"), jit=True)
    assert compiled[0] == pytest.approx(eager[0], rel=1e-5)
    np.testing.assert_allclose(compiled[1], eager[1], rtol=1e-4, atol=1e-7)


def test_sgm_gradient_matches_finite_differences():
    labels, x0 = _batch(5, n=8, dim=3, ids=(0, 1))
    x0 = x0.astype("float64")
    _, grad = value_and_grad(lambda e: ops.sum(sgm_loss(labels, e)), x0)
    eps = 1e-4
    for i, j in [(0, 0), (3, 2), (7, 1)]:
        plus, minus = x0.copy(), x0.copy()
        plus[i, j] += eps
        minus[i, j] -= eps
        numeric = reference.sgm_loss(labels, plus).sum() - reference.sgm_loss(labels, minus).sum()
        np.testing.assert_allclose(grad[i, j], numeric / (2 * eps), rtol=2e-2, atol=1e-4)


class TestBadInput:
    def test_label_rank(self):
        with pytest.raises(ValueError, match=r"shape \(2, 3, 1\)"):
            keras_sgm.SGMLoss()(np.zeros((2, 3, 1)), np.zeros((2, 4), "float32"))

    def test_batch_mismatch(self):
        with pytest.raises(ValueError, match="batch size"):
            keras_sgm.SGMLoss()(np.zeros(3, "int32"), np.zeros((2, 4), "float32"))

    def test_embedding_rank(self):
        with pytest.raises(ValueError, match=r"\[batch, dim\]"):
            keras_sgm.SGMLoss()(np.zeros(2, "int32"), np.zeros((2, 4, 1), "float32"))

    def test_string_labels(self):
        with pytest.raises(ValueError, match="received labels of dtype"):
            keras_sgm.SGMLoss()(np.array(["a", "b"]), np.zeros((2, 4), "float32"))

    def test_nan_embeddings_named(self):
        x = np.zeros((4, 2), "float32")
        x[2, 1] = np.nan
        with pytest.raises(ValueError, match="row 2"):
            keras_sgm.SGMLoss()(np.array([0, 0, 1, 1]), x)

    def test_fractional_and_huge_ids(self):
        with pytest.raises(ValueError, match="row 1 holds 1.5"):
            keras_sgm.SGMLoss()(np.array([0.0, 1.5]), np.zeros((2, 3), "float32"))
        with pytest.raises(ValueError, match="too large"):
            keras_sgm.SGMLoss()(np.array([0, 2**25]), np.zeros((2, 3), "float32"))

    def test_soft_label_rows(self):
        with pytest.raises(ValueError, match="row 1 sums to 0"):
            keras_sgm.SGMLoss()(np.array([[1.0, 0.0], [0.0, 0.0]]), np.zeros((2, 3), "float32"))
        with pytest.raises(ValueError, match=">= 0"):
            keras_sgm.SGMLoss()(np.array([[1.0, -1.0], [0.0, 1.0]]), np.zeros((2, 3), "float32"))

    def test_bad_constructor_arguments(self):
        with pytest.raises(ValueError, match="sigma"):
            keras_sgm.SGMLoss(sigma=0.0)
        with pytest.raises(ValueError, match="mining"):
            keras_sgm.TripletLoss(mining="hardest")
        with pytest.raises(ValueError, match="margin"):
            keras_sgm.TripletLoss(margin=-1)

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda: keras_sgm.SGMLoss(sigma="1.0"), "sigma must be a number; received '1.0'"),
            (lambda: keras_sgm.SGMLoss(sigma=True), "sigma must be a number; received True"),
            (lambda: keras_sgm.SGMLoss(sigma=float("inf")), "sigma must be a finite number > 0"),
            (lambda: keras_sgm.SGMLoss(leave_one_out="no"), "leave_one_out must be True or False"),
            (lambda: keras_sgm.TripletLoss(margin=float("nan")), "margin must be a finite"),
            (lambda: keras_sgm.TripletLoss(margin="0.2"), "margin must be a number"),
            (lambda: keras_sgm.TripletLoss(squared=1), "squared must be True or False"),
        ],
    )
    def test_constructor_types_and_values_named(self, make, message):
        with pytest.raises(ValueError, match=message):
            make()

    def test_numpy_numbers_are_numbers(self):
        assert keras_sgm.SGMLoss(sigma=np.float32(2.0)).sigma == 2.0
        assert keras_sgm.TripletLoss(margin=np.int64(0)).margin == 0.0


@pytest.mark.parametrize(
    "loss", [keras_sgm.SGMLoss(), keras_sgm.SGMLoss(leave_one_out=True), keras_sgm.TripletLoss()]
)
def test_an_empty_batch_has_loss_zero(loss):
    value = loss(np.zeros((0,), "int32"), np.zeros((0, 4), "float32"))
    assert tuple(value.shape) == () and float(value) == 0.0
    per_sample = type(loss)(reduction=None)(np.zeros((0,), "int32"), np.zeros((0, 4), "float32"))
    assert tuple(per_sample.shape) == (0,)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
@pytest.mark.parametrize("squared", [False, True])
def test_triplet_loss_matches_numpy(mining, squared):
    labels, x = _batch(6, n=18, ids=(1, 7, 40213, 5))
    labels[0] = 99  # an anchor without positives: 0 by convention
    got = to_numpy(triplet_loss(labels, x, margin=0.5, mining=mining, squared=squared))
    expected = reference.triplet_loss(labels, x, 0.5, mining, squared)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert got[0] == 0.0
    assert np.any(got > 0)


def test_triplet_options_soft_labels_and_normalisation():
    labels, x = _batch(7, n=12, ids=(0, 1, 2))
    soft = np.eye(3, dtype="float32")[labels] * 0.8 + 0.05
    np.testing.assert_allclose(to_numpy(triplet_loss(soft, x)), to_numpy(triplet_loss(labels, x)))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(
        to_numpy(triplet_loss(labels, x * 10, l2_normalize=True)),
        reference.triplet_loss(labels, unit),
        rtol=1e-4,
        atol=1e-5,
    )


def test_triplet_gradient_finite_with_duplicate_points():
    x = np.zeros((6, 3), "float32")  # every distance is 0: sqrt's slope is infinite
    labels = np.array([0, 0, 1, 1, 2, 2])
    loss, grad = value_and_grad(lambda e: ops.mean(triplet_loss(labels, e)), x)
    assert np.all(np.isfinite(grad))
    assert loss == pytest.approx(0.2)


def _mixture_fit_data():
    """`toy_data` with two (arbitrary) sub-classes per class, as (sub-class, class) pairs."""
    x, y = toy_data()
    sub = y * 2 + (np.arange(len(y)) % 2)
    return x, np.stack([sub, y], axis=1).astype("float32")


class TestSGMLoss(TestCase):
    @pytest.mark.parametrize(
        "init_kwargs",
        [{}, {"sigma": 0.8, "name": "s"}, {"sigma": 0.7, "leave_one_out": True}],
    )
    def test_config_saving_and_fit(self, init_kwargs):
        labels, x = _batch(8, n=10)
        value = self.run_loss_test(keras_sgm.SGMLoss, init_kwargs, labels, x)
        sigma = init_kwargs.get("sigma", 1.0)
        leave_one_out = init_kwargs.get("leave_one_out", False)
        expected = reference.sgm_loss(labels, x, sigma, leave_one_out).mean()
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-6)

    def test_mixture_config_saving_and_fit_on_pairs(self):
        sub, classes, x = TestMixture()._pairs(4)
        pairs = np.stack([sub, classes], axis=1)
        init_kwargs = {"sigma": 0.7, "mixture": True, "subclass_weight": 0.5}
        value = self.run_loss_test(
            keras_sgm.SGMLoss,
            init_kwargs,
            pairs,
            x,
            fit_data=_mixture_fit_data(),
        )
        expected = reference.sgm_mixture_loss(sub, classes, x, 0.7)
        expected = expected + 0.5 * reference.sgm_loss(sub, x, 0.7)
        np.testing.assert_allclose(value, expected.mean(), rtol=1e-4, atol=1e-6)

    def test_dtype_survives_the_config(self):
        loss = keras_sgm.SGMLoss(dtype="float64")
        assert keras_sgm.SGMLoss.from_config(loss.get_config()).dtype == "float64"


class TestTripletLoss(TestCase):
    @pytest.mark.parametrize(
        "init_kwargs",
        [
            {},
            {"margin": 0.3, "mining": "semi_hard"},
            {"margin": 0.3, "mining": "semi_hard", "squared": True, "l2_normalize": True},
        ],
    )
    def test_config_saving_and_fit(self, init_kwargs):
        labels, x = _batch(8, n=10)
        # One batch of all 72 toy points: on a batch of 24, some backends' initial weights
        # (each backend draws its own) already meet the margin, and the loss is 0 from the start.
        value = self.run_loss_test(keras_sgm.TripletLoss, init_kwargs, labels, x, batch_size=72)
        options = {"margin": 0.2, "mining": "batch_hard", "squared": False, **init_kwargs}
        if options.pop("l2_normalize", False):
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        expected = reference.triplet_loss(labels, x, **options).mean()
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5)

    def test_dtype_survives_the_config(self):
        loss = keras_sgm.TripletLoss(dtype="float64")
        assert keras_sgm.TripletLoss.from_config(loss.get_config()).dtype == "float64"


@given(seed=st.integers(0, 2**16), n=st.integers(3, 16), soft=st.booleans())
def test_leave_one_out_matches_numpy(seed, n, soft):
    labels, x = _batch(seed, n=n, ids=(0, 1, 2))
    if soft:
        labels = np.eye(3, dtype="float32")[labels] * 0.7 + 0.1
    got = to_numpy(sgm_loss(labels, x, 0.8, leave_one_out=True))
    np.testing.assert_allclose(got, reference.sgm_loss(labels, x, 0.8, True), rtol=1e-3, atol=1e-5)


def test_leave_one_out_removes_the_reward_for_noise():
    # Pure noise, no class signal: the paper's loss falls as the noise grows, leave-one-out's not.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 8)
    noise = rng.normal(size=(32, 64)).astype("float32")
    paper = [float(ops.mean(sgm_loss(labels, noise * s))) for s in (0.1, 1.0, 3.0)]
    loo = [
        float(ops.mean(sgm_loss(labels, noise * s, leave_one_out=True))) for s in (0.1, 1.0, 3.0)
    ]
    assert paper[2] < paper[0] - 0.3  # noise alone "explains" the labels
    assert min(loo[1:]) > loo[0]  # but raises the leave-one-out loss


class TestMixture:
    """SGMLoss(mixture=True): DGMS classes as mixtures of their sub-classes' Gaussians."""

    def _pairs(self, seed, n=20):
        rng = np.random.default_rng(seed)
        sub = rng.choice(np.array([0, 1, 2, 7, 9]), size=n)
        classes = np.array([5, 5, 8, 8, 3])[np.searchsorted([0, 1, 2, 7, 9], sub)]
        x = rng.normal(size=(n, 3)).astype("float32")
        return sub, classes, x

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_numpy_eagerly_and_under_xla(self, seed):
        sub, classes, x = self._pairs(seed)
        expected = reference.sgm_mixture_loss(sub, classes, x, sigma=0.7)
        np.testing.assert_allclose(
            to_numpy(sgm_loss(sub, x, 0.7, classes=classes)), expected, rtol=1e-4, atol=1e-6
        )
        loss = keras_sgm.SGMLoss(sigma=0.7, mixture=True, reduction=None)
        pairs = np.stack([sub, classes], axis=1)
        compiled = jit(lambda y, e: loss(y, e))
        np.testing.assert_allclose(to_numpy(compiled(pairs, x)), expected, rtol=1e-4, atol=1e-6)

    @pytest.mark.parametrize("weight", [0.5, 1.0])
    def test_a_subclass_term_beside_the_class_term(self, weight):
        sub, classes, x = self._pairs(3)
        both = keras_sgm.SGMLoss(sigma=0.7, mixture=True, subclass_weight=weight, reduction=None)
        expected = reference.sgm_mixture_loss(sub, classes, x, sigma=0.7) + weight * (
            reference.sgm_loss(sub, x, sigma=0.7)
        )
        got = to_numpy(both(np.stack([sub, classes], axis=1), x))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        assert keras_sgm.SGMLoss.from_config(both.get_config()).subclass_weight == weight
        with pytest.raises(ValueError, match="subclass_weight must be a finite number >= 0"):
            keras_sgm.SGMLoss(mixture=True, subclass_weight=-1.0)

    def test_one_subclass_per_class_is_the_plain_loss(self):
        labels, x = _batch(3)
        np.testing.assert_allclose(
            to_numpy(sgm_loss(labels * 2 + 1, x, classes=labels)),
            to_numpy(sgm_loss(labels, x)),
            rtol=1e-5,
            atol=1e-7,
        )
        loss = keras_sgm.SGMLoss(mixture=True)  # [batch] labels: the usual loss
        assert float(loss(labels, x)) == pytest.approx(float(keras_sgm.SGMLoss()(labels, x)))

    def test_a_two_mode_class_is_not_penalised_but_one_gaussian_is(self):
        # Class 0 has two far-apart modes; class 1 sits between them.
        x = np.array([[-6, 0], [-6.1, 0], [6, 0], [6.1, 0], [0, 0.1], [0, -0.1]], "float32")
        classes = np.array([0, 0, 0, 0, 1, 1])
        modes = np.array([0, 0, 1, 1, 2, 2])
        assert float(np.max(to_numpy(sgm_loss(modes, x, classes=classes)))) < 1e-3
        # One Gaussian per class: class 0's mean lands on class 1, every posterior is 1/2.
        np.testing.assert_allclose(to_numpy(sgm_loss(classes, x)), 0.5, atol=1e-3)

    def test_pairs_are_checked_as_ids(self):
        loss = keras_sgm.SGMLoss(mixture=True)
        x = np.zeros((3, 2), "float32")
        with pytest.raises(ValueError, match="row 1"):
            loss(np.array([[0, 1], [0.5, 1], [2, 3]], "float32"), x)
        with pytest.raises(ValueError, match=r"sub-class 1 appears with classes \[3, 4\]"):
            loss(np.array([[1, 3], [1, 4], [2, 4]]), x)
        assert keras_sgm.SGMLoss.from_config(loss.get_config()).mixture
