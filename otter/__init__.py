"""Otter Classifier: curate a folder-per-class image data set, train a classifier, serve it."""

__version__ = "0.1.0"
