"""Inference: prediction of images and slides, post-processing into nuclei, nuclei as objects, export."""
