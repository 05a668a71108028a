"""Tests of keras_sgm.evaluation."""
