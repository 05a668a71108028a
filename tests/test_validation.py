"""keras_sgm._validation: the one class-id check, and the parts it guards."""

import numpy as np
import pytest

from keras_sgm import _validation


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 2.5]), "row 2 holds 2.5"),
        (np.array([0.0, np.nan]), "row 1 holds nan"),
        (np.array(["a", "b"]), "integer class ids; received dtype <U1"),
        (np.array([[0, 1], [1, 0]]), r"shape \[n\]; received shape \(2, 2\)"),
        (np.array([0, 2**24]), "class id 16777216 at row 1 is too large"),
    ],
)
def test_every_class_id_check_names_the_row_and_value(labels, message):
    with pytest.raises(ValueError, match=message):
        _validation.class_ids(labels, "labels")


def test_class_ids_accept_whole_floats_and_columns_and_count_rows():
    ids = _validation.class_ids(np.array([[3.0], [40213.0]]), "y")
    assert ids.dtype == np.int64 and ids.tolist() == [3, 40213]
    with pytest.raises(ValueError, match="the inputs hold 3 rows but y hold 2"):
        _validation.class_ids([1, 2], "y", n=3)


def test_the_same_check_guards_the_sampler_the_gallery_and_fit_gaussians():
    from keras_sgm.data import ClassBalancedSampler
    from keras_sgm.hub import Gallery

    bad = np.array([0, 1, 1.5, 0])
    with pytest.raises(ValueError, match="row 2 holds 1.5"):
        ClassBalancedSampler(np.zeros((4, 2), "float32"), bad, samples_per_class=2)
    with pytest.raises(ValueError, match="Gallery labels must be whole class ids; row 2"):
        Gallery(np.zeros((4, 2), "float32"), bad)
