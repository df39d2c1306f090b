"""The files of an exported demo (``python -m tune_food.export``), kept here as the
package's one copy: ``app.py`` and ``preprocess.py`` are copied into the export folder
as they are. They import nothing of tune_food and no PyTorch (layer 0)."""
