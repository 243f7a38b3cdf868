"""The generated parts of the documentation site (``docs/``): written by a command, never typed.

``python -m gdepth.docs`` rewrites them; ``python -m gdepth.docs --check`` names the stale ones
and exits 1 (``tests/test_docs.py`` fails the same way). What is generated (:mod:`.build`):

* ``docs/configuration/reference.md`` (:mod:`.schema`): every key of the typed schemas
  (``gdepth/config/`` dataclasses) with its type, default and the comment beside it;
* ``docs/configuration/groups.md`` (:mod:`.configs`): every option of every config group under
  ``configs/``, its schema and header comment, its YAML file included verbatim;
* the block between ``<!-- gdepth.docs: NAME -->`` and ``<!-- /gdepth.docs: NAME -->`` of a
  hand-written page: the ``train=`` presets (``configuration/presets.md``), each model's depth
  convention from the model registry (``guide/depth.md``), the ``gdepth reproduce``
  experiments (``reproduce.md``), the committed studies of ``results/`` (``results.md``) and
  one table per ``benchmarks/results/*.json`` (``speed.md``; :mod:`.results`).

A package of gdepth rather than a script under ``docs/``: it reads the schemas by importing
``gdepth.config``, the config tree through ``gdepth.paths`` and the model registry, so it is
linted, import-checked and tested with the code it describes. It also reads the checkout's
``results/``, ``benchmarks/results/`` and ``docs/``: run it from a checkout.
"""
