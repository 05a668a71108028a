"""Tests of keras_sgm.backbones."""
