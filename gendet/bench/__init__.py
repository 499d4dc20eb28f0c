"""Benchmarks and studies: the data they build (the local GenImage-in-miniature set, the manipulated subset),
the runs they make (`bench.py`: train + protocol per cell; `genuine*.py`: the genuine-generator protocol),
their presets (`presets.py`, `train_presets.py`), the ablation studies and the shipped model's card.
Above training and evaluation, which it drives; below the CLI, serve and the Python API.
"""
