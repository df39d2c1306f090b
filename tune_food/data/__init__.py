"""Datasets and their images: the data root and downloads, decoding, listing and validating
splits, the validation set and leakage checks, DataLoaders, Food-101 subsets (``python
-m tune_food.data``). Reads ``common`` only.
"""
