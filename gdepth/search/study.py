"""One cell's hyperparameter search: Optuna's ask/tell over ordinary cells.

For a planned cell with ``search=<name>`` (not ``none``), :func:`run` asks Optuna's seeded TPE
sampler for ``parallel`` trials at a time; each trial is an ordinary cell (the cell's
overrides, ``search=none``, ``seeds=<search.seeds>`` and the trial's values) launched by the
sweeper's launcher like any other job, so it is resumable, runs on every launcher and shows in
``gdepth status``. Its record's mean **validation** accuracy is told back (:func:`objective`
reads nothing else; a failed or diverged trial is told as failed). After ``trials`` trials,
the best one's values are run once more with the cell's full ``seeds``: that record is the
cell's tuned result.

The study lives in ``<sweep dir>/search/<study key>.journal`` (Optuna's journal file storage,
safe for several processes and network file systems), so a killed sweep resumes: finished
trials stay told, a trial that was running is launched again with the same values (its record,
if written meanwhile, is found and not retrained), and the trials asked after it are new ones
(the sampler of a resumed study is seeded apart: :func:`gdepth.search.space.sampler`).
``<study key>.json`` summarises the study for ``gdepth tune-report`` and the tables: budget,
space, every trial (values, record key, validation accuracy) and the final cell (its overrides
as soon as it is launched, ``key: null, status: asked``; its record's key and status once it
ends: ``gdepth status`` finds a final in flight through ``plan.json``,
:func:`gdepth.search.progress.search_states`).

The summary is committed with a study under ``results/``; the journal is not (``.gitignore``).
On a machine without the journal (a fresh clone), the study is rebuilt from the summary's
trials (:func:`restored`: their values, states and validation accuracies, in order), so a
finished search only looks its final up and a stopped one goes on where it stopped, as with
its journal, instead of replaying its sampler from the first trial. The summary is written as
soon as a batch is asked, so the trials that were running when a sweep was killed are in it:
they are restored running and launched again with the same values (the same cells as in
``plan.json``, and the sampler's next proposals are those the journal's study would make).
With a pruner, the summary also keeps each told trial's reported curve (``curve``: epoch →
value), so the restored study's median pruner compares a new trial with the same curves as
the journal's would.

With ``search.pruner=median`` each trial's job also carries its study and number
(:func:`gdepth.search.prune.job_overrides`): the trial reports its validation accuracy to the
study as it trains and stops when the pruner says so (:mod:`gdepth.search.prune`). Its record is
then ``pruned``; it is told ``PRUNED`` (Optuna keeps its last reported value), counts against the
budget, can never be the best trial (Optuna's best is among complete trials) and is not run
again on resume.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from gdepth.search import progress, prune
from gdepth.search import space as space_mod
from gdepth.search.progress import load_summaries, read_summary  # the summaries' readers
from gdepth.sweep import layout, plan, records

log = logging.getLogger("gdepth")
FOLDER = layout.SEARCH
# launch(list of override lists) -> their records (None where a job wrote none)
Launch = Callable[[list[list[str]]], list[dict[str, Any] | None]]
PRUNER_KEYS = ("pruner", *prune.SETTINGS)  # in a summary only with a pruner
FINISHED = tuple(TrialState[name] for name in progress.TOLD)  # told: not run again


def objective(record: dict[str, Any] | None) -> float | None:
    """A trial's value: the mean validation accuracy of its seeds, or None (failed).

    The test accuracy of a trial is never read: model selection sees validation only.
    """
    if record is None or record.get("status") != "ok":
        return None
    values = [s["val_acc"] for s in record.get("seeds", [])
              if s.get("status", "ok") == "ok" and s.get("val_acc") is not None]
    values = [float(v) for v in values if not math.isnan(float(v))]
    return sum(values) / len(values) if values else None


def trial_job(base: list[str], params: dict[str, Any], seeds: int,
              trial: list[str] | None = None) -> list[str]:
    """The overrides of a cell with ``params``: the base cell's, less what the search sets;
    ``trial``: a pruned search's ``trial.*`` overrides (:func:`.prune.job_overrides`)."""
    drop = {*params, "seeds", "search", "trial"}
    kept = [o for o in base if o.partition("=")[0].lstrip("+") not in drop
            and not o.partition("=")[0].lstrip("+").startswith(("search.", "trial."))]
    return [*kept, "search=none", f"seeds={seeds}", *space_mod.overrides(params), *(trial or [])]


def summary_path(sweep_dir: Path, study_key: str) -> Path:
    return Path(sweep_dir) / FOLDER / f"{study_key}.json"


def trial_only_keys(directory: str | Path) -> set[str]:
    """Keys of cells that only a search launched and that are not its final: the summaries'
    trials, and every cell a search planned (``plan.json`` marks it with its study key), so a
    trial in flight, told to no summary yet, is one too. A table shows the finals only."""
    trials, finals = set(), set()
    for summary in load_summaries(directory):
        trials.update(t["key"] for t in summary["trials"] if t.get("key"))
        if (summary.get("final") or {}).get("key"):
            finals.add(summary["final"]["key"])
    for sweep_plan in plan.planned(directory).values():
        trials.update(key for key, cell in sweep_plan["cells"].items() if cell.get("search"))
    return trials - finals


def run(sweep_dir: Path, study_key: str, label: str, base: list[str], search: dict[str, Any],
        config: dict[str, Any], launch: Launch) -> dict[str, Any]:
    """Run (or resume) the study of one cell; return its summary (also written to disk).

    ``base``: the cell's overrides; ``config``: its effective config (the space is checked
    against it); ``launch``: runs override lists as ordinary cells, returns their records.
    """
    distributions = space_mod.check(search, config)
    folder = Path(sweep_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = prune.storage(sweep_dir, study_key)
    path = summary_path(sweep_dir, study_key)
    old = read_summary(path) or {}
    keys: dict[int, str | None] = {t["number"]: t.get("key") for t in old.get("trials", [])}
    rebuilt: list[optuna.trial.FrozenTrial] = []
    try:  # a resumed study's sampler is seeded apart (space.sampler)
        resumed_at = len(optuna.load_study(study_name=study_key, storage=storage)
                         .get_trials(deepcopy=False))
    except KeyError:  # a new study, or one whose journal this machine does not have
        rebuilt, keys = restored(old, distributions, label)
        resumed_at = len(rebuilt)
    study = optuna.create_study(storage=storage, study_name=study_key, direction="maximize",
                                sampler=space_mod.sampler(search, resumed_at),
                                load_if_exists=True)
    if rebuilt:
        study.add_trials(rebuilt)
        log.info("search %s: %d trials restored from %s (no journal here), %d of them running "
                 "when it stopped", label, len(rebuilt), path.name,
                 sum(t.state == TrialState.RUNNING for t in rebuilt))
    budget, per_trial = int(search["trials"]), int(search["seeds"])

    def save(final: dict[str, Any] | None = None) -> dict[str, Any]:
        summary = _summary(study, study_key, label, base, search, config, keys, final)
        records.write(path, summary)  # after every batch: a killed sweep keeps the keys
        return summary

    def finished() -> int:
        return sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))

    def job(trial: optuna.trial.BaseTrial | optuna.trial.FrozenTrial) -> list[str]:
        return trial_job(base, trial.params, per_trial,
                         prune.job_overrides(search, study_key, trial.number))

    pending = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    if pending:
        log.info("search %s: %d trials of a killed launch run again", label, len(pending))
    while pending or finished() < budget:
        batch = pending or [study.ask(distributions)
                            for _ in range(min(int(search["parallel"]), budget - finished()))]
        if not pending:
            save()  # the asked trials' values, for a resume without the journal
        pending = []
        found = launch([job(t) for t in batch])
        for trial, record in zip(batch, found, strict=True):
            value = objective(record)
            keys[trial.number] = record.get("key") if record else None
            if pruned_here(record, job(trial)):  # Optuna keeps its last reported value
                study.tell(trial.number, state=TrialState.PRUNED)
            elif value is None:
                study.tell(trial.number, state=TrialState.FAIL)
            else:
                study.tell(trial.number, value)
        save()
        log.info("search %s: %d/%d trials, best val %s", label, finished(), budget,
                 _best_text(study))
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        log.error("search %s: every trial failed; no tuned cell", label)
        return save()
    final_job = trial_job(base, study.best_trial.params, int(config["seeds"]))
    save({"overrides": final_job, "key": None, "status": "asked"})  # `gdepth status` finds it
    (record,) = launch([final_job])
    return save({"overrides": final_job, "key": record.get("key") if record else None,
                 "status": record.get("status") if record else "missing"})


def restored(summary: dict[str, Any], distributions: dict[str, Any], label: str
             ) -> tuple[list[optuna.trial.FrozenTrial], dict[int, str | None]]:
    """The trials of a study ``summary`` (complete, failed, pruned, and running: asked when
    the sweep was killed, launched again; in their order) as Optuna trials numbered from 0,
    and their record keys by those numbers. A trial that no longer fits ``distributions``
    (the space was changed) restores nothing: logged, the search starts afresh."""
    told = [t for t in summary.get("trials", []) if t.get("state") in
            {s.name for s in (*FINISHED, TrialState.RUNNING)}]
    try:
        trials = [optuna.trial.create_trial(
            state=TrialState[t["state"]], params=t["params"],
            distributions={k: distributions[k] for k in t["params"]},
            value=t.get("val_acc") if t["state"] not in ("FAIL", "RUNNING") else None,
            intermediate_values=_curve(t))
            for t in told]
    except (KeyError, ValueError) as err:
        log.warning("search %s: the summary's trials do not fit the space (%s); searching "
                    "afresh", label, err)
        return [], {}
    return trials, {i: t.get("key") for i, t in enumerate(told)}


def _curve(trial: dict[str, Any]) -> dict[int, float] | None:
    """A summary trial's reported values by epoch: its ``curve``; a summary written before
    curves were kept has a pruned trial's last value at ``pruned_at`` only."""
    if trial.get("curve"):
        return {int(step): float(value) for step, value in trial["curve"].items()}
    if (trial["state"] == "PRUNED" and trial.get("pruned_at") is not None
            and trial.get("val_acc") is not None):
        return {int(trial["pruned_at"]): trial["val_acc"]}
    return None


def pruned_here(record: dict[str, Any] | None, job: list[str]) -> bool:
    """Whether ``record`` is that of this trial's job, stopped by this study's pruner (a
    record of the same cell pruned in another study, or run by another job, is not)."""
    return (record is not None and record.get("status") == records.PRUNED
            and list(record.get("overrides") or []) == list(job))


def _best_text(study: optuna.Study) -> str:
    try:
        return f"{100 * study.best_value:.1f}"
    except ValueError:  # no completed trial yet
        return "–"


def _summary(study: optuna.Study, study_key: str, label: str, base: list[str],
             search: dict[str, Any], config: dict[str, Any], keys: dict[int, str | None],
             final: dict[str, Any] | None) -> dict[str, Any]:
    trials = [{"number": t.number, "state": t.state.name, "params": t.params,
               "val_acc": t.value, "key": keys.get(t.number),
               **({"pruned_at": t.last_step} if t.state == TrialState.PRUNED else {}),
               **({"curve": {str(step): value for step, value
                             in sorted(t.intermediate_values.items())}}
                  if t.intermediate_values and t.state in FINISHED else {})}
              for t in study.get_trials(deepcopy=False)]
    best = None
    if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        b = study.best_trial
        best = {"number": b.number, "params": b.params, "val_acc": b.value}
    return {"study": study_key, "label": label, "base_overrides": base,
            "config": records.identity(config),
            "search": {k: search.get(k) for k in ("name", "trials", "seeds", "sampler_seed",
                                                  "startup_trials", "parallel")
                       + (PRUNER_KEYS if search.get("pruner", "none") != "none" else ())},
            "space": space_mod.space_of(search, config["model"]["name"]),
            "trials": trials, "best": best, "final": final,
            "written_at": dt.datetime.now(dt.timezone.utc).isoformat()}
