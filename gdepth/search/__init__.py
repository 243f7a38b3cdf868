"""Per-cell hyperparameter search with an equal budget (``search=default``): every (dataset,
model, norm, depth) cell is tuned by the same number of Optuna trials, so a depth table
compares equally tuned networks. :mod:`gdepth.search.space` reads the space (data, in
``configs/search/``); :mod:`gdepth.search.study` runs a cell's study over ordinary cells."""
