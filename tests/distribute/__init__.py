"""Tests of keras_sgm.distribute."""
