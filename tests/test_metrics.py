import numpy as np
import pytest

import keras_sgm
from tests import reference
from tests.testing import TestCase, to_numpy, toy_data


def _batch(seed, n=40, dim=5, ids=(3, 4, 40213)):
    rng = np.random.default_rng(seed)
    return rng.choice(np.array(ids), size=n), rng.normal(size=(n, dim)).astype("float32")


def _mean_hit(labels, embeddings):
    return reference.centroid_accuracy(labels, embeddings).mean()


class TestCentroidAccuracy(TestCase):
    def test_function_matches_numpy(self):
        labels, x = _batch(9)
        got = to_numpy(keras_sgm.centroid_accuracy(labels, x))
        np.testing.assert_array_equal(got, reference.centroid_accuracy(labels, x))
        assert 0.0 < got.mean() < 1.0  # random points: some hits, some misses

    def test_state_config_saving_and_fit(self):
        labels, x = _batch(9)
        expected = _mean_hit(labels, x)
        model = self.run_metric_test(
            keras_sgm.CentroidAccuracy, {"name": "hits"}, labels, x, expected, reference=_mean_hit
        )
        x_fit, y_fit = toy_data()
        logs = model.evaluate(x_fit, y_fit, batch_size=len(y_fit), verbose=0, return_dict=True)
        assert logs["hits"] >= 0.9  # separated blobs

    def test_default_name_and_dtype(self):
        metric = keras_sgm.CentroidAccuracy()
        assert (metric.name, metric.dtype) == ("centroid_accuracy", "float32")
        assert self.assert_config_round_trip(metric).name == "centroid_accuracy"

    def test_batches_average_by_size_and_sample_weight(self):
        (a_labels, a), (b_labels, b) = _batch(1, n=30), _batch(2, n=10)
        metric = keras_sgm.CentroidAccuracy()
        metric.update_state(a_labels, a)
        metric.update_state(b_labels, b)
        hits = np.concatenate(
            [reference.centroid_accuracy(a_labels, a), reference.centroid_accuracy(b_labels, b)]
        )
        assert float(metric.result()) == pytest.approx(hits.mean(), rel=1e-6)
        weights = np.random.default_rng(3).uniform(size=30).astype("float32")
        metric.reset_state()
        metric.update_state(a_labels, a, sample_weight=weights)
        expected = np.sum(weights * reference.centroid_accuracy(a_labels, a)) / weights.sum()
        assert float(metric.result()) == pytest.approx(expected, rel=1e-5)

    def test_one_hot_labels_score_as_hard_labels(self):
        rng = np.random.default_rng(4)
        hard = rng.integers(0, 4, size=24)
        x = rng.normal(size=(24, 3)).astype("float32")
        one_hot = np.eye(6, dtype="float32")[hard]  # two columns never used
        np.testing.assert_array_equal(
            to_numpy(keras_sgm.centroid_accuracy(one_hot, x)), reference.centroid_accuracy(hard, x)
        )

    def test_well_separated_classes_score_one(self):
        labels = np.repeat([0, 1, 2], 5)
        x = (labels[:, None] * 10.0 + np.random.default_rng(5).normal(size=(15, 2))).astype(
            "float32"
        )
        metric = keras_sgm.CentroidAccuracy()
        metric.update_state(labels, x)
        assert float(metric.result()) == 1.0
