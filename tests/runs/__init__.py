"""Tests of keras_sgm.runs."""
