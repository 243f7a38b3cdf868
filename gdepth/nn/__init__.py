"""Seed-native building blocks: the seed axis contract (:mod:`gdepth.nn.seeds`) and the
hand-written kernels the models compute with (:mod:`gdepth.nn.kernels`)."""
