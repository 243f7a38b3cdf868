r"""Pruning a search's trials inside their jobs (``search.pruner=median``).

A trial is an ordinary cell launched as its own job (:mod:`gdepth.search.study`), so its study
cannot watch it train; the trial reports to the study itself. With a pruner, the search puts the
trial's study and number on the trial's job (``trial.study``, ``trial.number`` and the pruner's
settings: :func:`job_overrides`; the ``trial`` node is not identity, so the trial keeps the key
of the same cell run without a search). In the job, :func:`open_trial` opens the same study from
its journal file (``<sweep>/search/<study>.journal``: Optuna's journal storage, made for several
processes on a shared file system) and returns a :class:`Reporter`, which the training loop calls
after every epoch (``monitor`` of :func:`gdepth.engine.fit.fit_batched`). Every ``interval``
epochs it reports the trial's value to the study and asks Optuna's pruner; when the pruner says
prune, it raises :class:`Pruned`. The cell then writes a ``pruned`` record (the epochs run, the
last reported value; :mod:`gdepth.cell.run`) and the search tells the trial ``PRUNED``: it counts
against the budget, is never the best trial, and is not run again on resume.

The reported value at epoch t is the mean over the seeds of the validation accuracy **at each
seed's selected epoch so far** (best validation accuracy by default), not at epoch t. The
objective is the mean validation accuracy at the selected epochs (:func:`gdepth.search.study.
objective`), so the value at t is exactly the objective the trial would have were it stopped at
t: it never decreases and it ends at the objective itself, and the pruner compares trials on the
quantity the search ranks them by. The current epoch's accuracy is noisier (dropout masks,
oscillations) and would prune a trial whose validation peaked early and then sagged, although
its objective keeps that peak. Test accuracy is never reported (the loop hands over validation
accuracy only).

Median rule (Optuna's ``MedianPruner``; the median stopping rule of Golovin et al., "Google
Vizier", KDD 2017): at a reported epoch t ≥ ``warmup_epochs``, once ``startup_trials`` trials are
complete, a trial is pruned when its best reported value is below the median of the complete
trials' values at t. A trial whose seeds all stop early (patience) reports its final value at
the remaining epochs of the interval (:meth:`Reporter.finish`): the later trials are compared
with what it ended at.

Where a trial's seeds train in several batches (``engine=loop``, ``seeds_per_batch``), only its
first batch reports (its seeds' mean); the tree task's loop reports nothing (never pruned).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdepth.sweep import layout

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("gdepth")
PRUNERS = ("none", "median")
# The search's keys (SearchConfig.pruner_*) → the trial's (TrialConfig), which its job carries.
SETTINGS = {"pruner_startup_trials": "startup_trials", "pruner_warmup_epochs": "warmup_epochs",
            "pruner_interval": "interval"}
MINIMUM = {"startup_trials": 0, "warmup_epochs": 0, "interval": 1}


class Pruned(Exception):
    """The study's pruner stopped the trial; ``info``: what the ``pruned`` record says of it
    (``epoch``, ``epochs``, ``val_acc``: the last reported value, ``pruner``, ``interval``)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(f"pruned at epoch {info['epoch']}/{info['epochs']}: val acc "
                         f"{100 * info['val_acc']:.1f} below the median of the complete trials")
        self.info = info


def check(search: Mapping[str, Any]) -> None:
    """Refuse, in one line, an unknown pruner or a setting out of range (ValueError)."""
    name = search.get("pruner", "none")
    if name not in PRUNERS:
        raise ValueError(f"search.pruner={name}: unknown pruner; valid: {', '.join(PRUNERS)}")
    for key, short in SETTINGS.items():
        value = search.get(key, MINIMUM[short])
        if isinstance(value, bool) or not isinstance(value, int) or value < MINIMUM[short]:
            raise ValueError(f"search.{key}={value}: must be a whole number >= "
                             f"{MINIMUM[short]}")


def job_overrides(search: Mapping[str, Any], study: str, number: int) -> list[str]:
    """The ``trial.*`` overrides of trial ``number`` of the study ``study``; none without a
    pruner (the trial's job is then exactly what it was before pruners existed)."""
    name = search.get("pruner", "none")
    if name == "none":
        return []
    return [f"trial.study={study}", f"trial.number={number}", f"trial.pruner={name}",
            *(f"trial.{short}={int(search[key])}" for key, short in SETTINGS.items()
              if key in search)]


def pruner(trial: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """Optuna's pruner of a trial's settings (steps are epochs, reported every ``interval``)."""
    import optuna

    if trial["pruner"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(trial["startup_trials"]),
                                           n_warmup_steps=int(trial["warmup_epochs"]))
    return optuna.pruners.NopPruner()


class Reporter:
    """The training loop's ``monitor`` of one trial: ``reporter(epoch, {seed: value})``, where
    value is the seed's validation accuracy at its selected epoch so far; raises
    :class:`Pruned` when the study's pruner says so (module docstring)."""

    def __init__(self, trial: optuna.trial.Trial, settings: Mapping[str, Any], epochs: int,
                 reported: Mapping[int, float]) -> None:
        self.trial, self.settings = trial, dict(settings)
        self.interval, self.epochs = int(settings["interval"]), int(epochs)
        self.reported = set(reported)  # epochs already in the study (a resumed trial's)
        self.seeds: tuple[int, ...] | None = None  # the batch that reports: the first
        self.last: tuple[int, float] | None = None  # (epoch, value) of the latest epoch

    def __call__(self, epoch: int, values: Mapping[int, float]) -> None:
        if self.seeds is None:
            self.seeds = tuple(values)
        if tuple(values) != self.seeds:
            return
        finite = [float(v) for v in values.values() if math.isfinite(float(v))]
        if not finite:
            return
        value = sum(finite) / len(finite)
        self.last = (int(epoch), value)
        if epoch % self.interval == 0:
            self._report(int(epoch), value)
            if self.trial.should_prune():
                raise Pruned({"epoch": int(epoch), "epochs": self.epochs, "val_acc": value,
                              "pruner": self.settings["pruner"], "interval": self.interval})

    def _report(self, epoch: int, value: float) -> None:
        if epoch not in self.reported:  # a resumed trial repeats epochs it reported
            self.trial.report(value, epoch)
            self.reported.add(epoch)

    def finish(self) -> None:
        """Training ended (not pruned): if it ended before ``epochs`` (every seed stopped), the
        objective is final, so the remaining reported epochs get the last value."""
        if self.last is None:
            return
        epoch, value = self.last
        for step in range(epoch - epoch % self.interval + self.interval, self.epochs + 1,
                          self.interval):
            self._report(step, value)


def storage(sweep_dir: str | Path, study: str) -> optuna.storages.JournalStorage:
    """The journal storage of the study ``study`` of the sweep in ``sweep_dir``.

    By its absolute path: Optuna's file lock is a symbolic link to the journal, and a lock left
    by a killed process (``kill -9`` while it wrote) is released after a grace period only if
    that link resolves (a relative target resolves from the lock's own folder: it dangles, and
    every later process waits for the lock forever).
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(layout.journal_path(sweep_dir, study)
                                                 .resolve())))


def open_trial(base_dir: str | Path, trial: Mapping[str, Any] | None, epochs: int
               ) -> Reporter | None:
    """The reporter of the trial the cell is (its config's ``trial`` node), or None: no pruned
    search's trial, or its study or trial cannot be found or is no longer running (logged; the
    cell then trains as any other)."""
    if not trial or trial.get("study") is None or trial.get("pruner", "none") == "none":
        return None
    import optuna
    from optuna.trial import TrialState

    key, number = str(trial["study"]), int(trial["number"])
    path = layout.journal_path(base_dir, key)
    if not path.exists():
        log.warning("trial %d: no study %s; training without pruning", number, path)
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = storage(base_dir, key)
    try:  # the job asks the study for nothing: a random sampler (no TPE model is built)
        study = optuna.load_study(study_name=key, storage=journal, pruner=pruner(trial),
                                  sampler=optuna.samplers.RandomSampler())
        # BaseStorage's public methods: the trial's id from its number (a Trial is made from it)
        trial_id = journal.get_trial_id_from_study_id_trial_number(
            journal.get_study_id_from_name(key), number)
    except KeyError:
        log.warning("no trial %d in study %s; training without pruning", number, path)
        return None
    frozen = journal.get_trial(trial_id)
    if frozen.state != TrialState.RUNNING:
        log.warning("trial %d of study %s is %s: training without pruning", number, key,
                    frozen.state.name)
        return None
    return Reporter(optuna.trial.Trial(study, trial_id), trial, epochs,
                    frozen.intermediate_values)
