"""Tests of keras_sgm.data."""
