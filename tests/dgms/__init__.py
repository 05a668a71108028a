"""Tests of keras_sgm.dgms."""
