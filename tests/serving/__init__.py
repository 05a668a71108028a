"""Tests of keras_sgm.serving."""
