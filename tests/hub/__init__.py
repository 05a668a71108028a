"""Tests of keras_sgm.hub."""
