"""Experiment tracking: each cell of a run or sweep also a run in MLflow or TensorBoard.

``tracking=mlflow`` or ``tracking=tensorboard`` (configs/tracking/; the optional extras
``gdepth[mlflow]``, ``gdepth[tensorboard]``) logs, for every job's record:

- parameters: the record's resolved config, flattened (``model.name``, ``depth``, ``train.lr``…;
  lists and null as JSON text); TensorBoard shows them as hparams;
- per-seed results: every number of a seed's entry (``test_acc``, ``val_acc``, ``train_acc``,
  ``train_loss``, ``val_loss``, ``selected_epoch``, ``epochs_run``, timings, diagnostics' own)
  under its own name with step = the seed; their mean and std as ``mean/<m>``, ``std/<m>``;
- per-epoch curves (``tracking.curves``): ``curve/seed_<s>/<metric>`` with step = the epoch,
  collected while the job trains (:func:`gdepth.train_progress.collect_curves`). A seed resumed
  from a checkpoint has its curve from the resumed epoch on; a seed kept from before a restart
  has none.

Where: ``TrackingCallback`` is a Hydra callback (configs/config.yaml), and Hydra calls
``on_job_start`` / ``on_job_end`` in the process that runs the job under every launcher (basic,
joblib, submitit, Ray), so the cell code knows nothing of tracking. A job that resumed a done
cell (its record older than the job) logs nothing again. A cell split into seed jobs
(``seeds_per_job``) is one MLflow run per job (tag ``gdepth.key`` joins them) and one TensorBoard
run folder (each job its own event file). ``tracking`` is not part of a cell's identity
(:data:`gdepth.sweep.records.NOT_IDENTITY`), and a tracking failure (package missing, store
unreachable) is a warning: the record is written before and stays.

Numbers are logged as recorded. MLflow stores float64, so its metrics read back equal to the
record's. TensorBoard scalars are float32 (``simple_value``; its default data server shows no
float64 scalars), so they read back equal to the record's value rounded to float32: the
accuracies exactly (computed in float32), losses and means to float32's precision.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gdepth import train_progress

log = logging.getLogger("gdepth")

TRACKERS = ("none", "mlflow", "tensorboard")  # each needs the package and pip extra of its name
# A record's status as MLflow's run status: a pruned trial was stopped on purpose by its
# search (MLflow's KILLED: ended by request), not broken; any other status is FAILED.
RUN_STATUS = {"ok": "FINISHED", "diverged": "FINISHED", "pruned": "KILLED"}
MAX_PARAM_CHARS = 6000  # MLflow's longest parameter value


def flat_params(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` flattened to dotted keys; numbers, strings and booleans as they are, lists,
    empty dicts and null as JSON text."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value, default=str)

    walk("", config)
    return out


def _number(value: Any) -> float | None:
    """A finite or infinite number as float; None for nan, booleans and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def seed_metrics(record: dict[str, Any]) -> list[tuple[str, float, int]]:
    """``(name, value, step)``: each seed's numbers (step = seed), then ``mean/<m>`` and
    ``std/<m>`` of the record's summary (step 0; not for a seed job's part of a cell, whose
    summary is not the cell's). nan (not measured) is left out."""
    out = [(name, number, int(entry["seed"])) for entry in record.get("seeds") or []
           for name, value in entry.items()
           if name != "seed" and (number := _number(value)) is not None]
    summary = {} if record.get("seed_range") else record.get("summary") or {}
    return out + [(f"{stat}/{metric}", number, 0) for metric, stats in summary.items()
                  for stat in ("mean", "std") if (number := _number(stats.get(stat))) is not None]


def curve_metrics(curves: train_progress.Curves) -> list[tuple[str, float, int]]:
    """``(curve/seed_<s>/<metric>, value, epoch)`` of the curves a job collected (nan left out)."""
    return [(f"curve/seed_{seed}/{name}", value, epoch)
            for seed, per_metric in sorted(curves.items())
            for name, points in per_metric.items()
            for epoch, value in points if not math.isnan(value)]


def run_name(record: dict[str, Any]) -> str:
    """``csbm-gcn-none-L2`` (a part of a split cell: ``…-seeds0-2``)."""
    config = record["config"]
    name = (f"{config['dataset']['name']}-{config['model']['name']}-{config['norm']['name']}"
            f"-L{config['depth']}")
    part = record.get("seed_range")
    return f"{name}-seeds{part[0]}-{part[1]}" if part else name


def tags(record: dict[str, Any]) -> dict[str, str]:
    """What says which cell and how it went (MLflow tags; TensorBoard text)."""
    engine = record.get("engine") or {}
    out = {"gdepth.key": record["key"], "gdepth.sweep.status": record["status"],
           "gdepth.sweep": str(record["config"].get("name")),
           "gdepth.host": str(record.get("host")), "gdepth.engine": str(engine.get("used")),
           "gdepth.device": str(record.get("device"))}
    if record.get("seed_range"):
        out["gdepth.seeds"] = "{}-{}".format(*record["seed_range"])
    if record.get("error"):
        out["gdepth.error"] = str(record["error"])[:MAX_PARAM_CHARS]
    return out


@functools.lru_cache(maxsize=4)
def _mlflow_client(uri: str) -> Any:
    """One client per store and process (the local launcher runs every cell in one)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def mlflow_target(settings: Any, base_dir: Path, sweep: str | None) -> tuple[str, str]:
    """The tracking URI and experiment name (defaults: ``sqlite:///<sweep dir>/mlflow.db``,
    the sweep's name)."""
    uri = settings.get("uri") or f"sqlite:///{Path(base_dir).resolve() / 'mlflow.db'}"
    return uri, settings.get("experiment") or sweep or "gdepth"


def mlflow_experiment(uri: str, name: str) -> str:
    """The id of experiment ``name`` in the store at ``uri``, created if new (by whichever job
    comes first: a concurrent creation is found on the second look)."""
    from mlflow.exceptions import MlflowException

    client = _mlflow_client(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def log_mlflow(settings: Any, base_dir: Path, record: dict[str, Any],
               curves: train_progress.Curves) -> str:
    """Log ``record`` (and ``curves``) as one MLflow run; its run id."""
    from mlflow.entities import Metric, Param

    uri, experiment = mlflow_target(settings, base_dir, record["config"].get("name"))
    client = _mlflow_client(uri)
    run_id = client.create_run(mlflow_experiment(uri, experiment), run_name=run_name(record),
                               tags=tags(record)).info.run_id
    now = int(time.time() * 1000)
    params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flat_params(record["config"]).items()]
    metrics = [Metric(k, v, now, step) for k, v, step in
               seed_metrics(record) + (curve_metrics(curves) if settings.get("curves") else [])]
    try:
        client.log_batch(run_id, metrics=metrics, params=params)  # the client splits batches
    finally:
        client.set_terminated(run_id, RUN_STATUS.get(record["status"], "FAILED"))
    return run_id


def tensorboard_dir(settings: Any, base_dir: Path, record: dict[str, Any]) -> Path:
    """``<log_dir>/<run name>-<key>``: one folder per cell (its seed jobs' event files too)."""
    root = Path(settings.get("log_dir") or Path(base_dir) / "tensorboard")
    name = run_name({**record, "seed_range": None})
    return root / f"{name}-{record['key']}"


def log_tensorboard(settings: Any, base_dir: Path, record: dict[str, Any],
                    curves: train_progress.Curves) -> Path:
    """Write ``record`` (and ``curves``) to an event file of the cell's run folder; the folder."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    folder = tensorboard_dir(settings, base_dir, record)
    part = record.get("seed_range")
    suffix = f".seeds-{part[0]}-{part[1]}" if part else ""
    scalars = seed_metrics(record) + (curve_metrics(curves) if settings.get("curves") else [])
    with SummaryWriter(str(folder), filename_suffix=suffix) as writer:
        for tag, value, step in scalars:
            writer.add_scalar(tag, value, step)
        means = {tag: value for tag, value, _ in scalars if tag.startswith("mean/")}
        for summary in hparams(flat_params(record["config"]), means):
            writer.file_writer.add_summary(summary)
        writer.add_text("gdepth", "\n".join(f"{k}: {v}  " for k, v in tags(record).items()))
    return folder


LOGGERS = {"mlflow": log_mlflow, "tensorboard": log_tensorboard}


def check(name: str) -> str | None:
    """Why tracking ``name`` cannot run here (one line), or None."""
    if name not in TRACKERS:
        return f"unknown tracking '{name}'; valid: {', '.join(TRACKERS)}"
    if name != "none":
        try:
            __import__(name)
        except ImportError:
            return f"tracking={name} needs {name}: pip install 'gdepth[{name}]'"
    return None


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"


def _base_dir(config: DictConfig) -> Path:
    """The job's run or sweep folder (where its record is)."""
    multirun = OmegaConf.select(config, "hydra.mode") in (RunMode.MULTIRUN, "MULTIRUN")
    return Path(config.hydra.sweep.dir if multirun else config.hydra.run.dir)


def _settings(config: DictConfig) -> dict[str, Any]:
    node = config.get("tracking")  # a config from before tracking existed: none
    out = OmegaConf.to_container(node, resolve=True) if node is not None else None
    return out if isinstance(out, dict) else {"name": "none"}


class TrackingCallback(Callback):
    """Logs each job's record to the tracker ``tracking`` names (module docstring)."""

    def __init__(self) -> None:
        self.job_started: float | None = None

    def _start(self, config: DictConfig, base_dir: Path) -> None:
        """The launching process: warn once if tracking cannot work; make the MLflow store and
        experiment once, before parallel jobs would race to create them."""
        settings = _settings(config)
        name = str(settings.get("name", "none"))
        if name == "none":
            return
        problem = check(name)
        if problem is None and name == "mlflow":
            try:
                mlflow_experiment(*mlflow_target(settings, base_dir, config.get("name")))
            except Exception as err:  # each job tries again and warns
                problem = f"tracking=mlflow: {_one_line(err)}"
        if problem:
            log.warning("%s; the cells run and keep their records", problem)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config, Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config, Path(config.hydra.sweep.dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.job_started = time.time()
        if _settings(config).get("name", "none") != "none":
            train_progress.collect_curves()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        curves = train_progress.take_curves()
        settings = _settings(config)
        name = str(settings.get("name", "none"))
        if name == "none":
            return
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.COMPLETED:
            return  # the job raised: no record was returned (the sweeper records dead jobs)
        record = job_return.return_value
        if not isinstance(record, dict) or "key" not in record:
            return
        if not self._ran_now(record):
            return  # a done cell this job skipped: logged by the job that ran it
        problem = check(name)
        if problem:
            log.warning("%s; cell %s keeps its record", problem, record["key"])
            return
        try:
            where = LOGGERS[name](settings, _base_dir(config), record, curves)
            log.info("tracking=%s: logged cell %s (%s)", name, record["key"], where)
        except Exception as err:  # tracking must never lose a record
            log.warning("tracking=%s could not log cell %s: %s; its record is kept", name,
                        record["key"], _one_line(err))

    def _ran_now(self, record: dict[str, Any]) -> bool:
        """Whether this job ran the cell (its record started after the job did)."""
        try:
            started = dt.datetime.fromisoformat(str(record["started_at"])).timestamp()
        except (KeyError, ValueError):
            return True
        return self.job_started is None or started >= self.job_started
