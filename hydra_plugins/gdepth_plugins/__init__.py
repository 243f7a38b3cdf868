"""gdepth's Hydra plugins (Hydra loads plugins only from the ``hydra_plugins`` namespace).

- ``hydra/sweeper=gdepth``: ``gdepth.sweep.sweeper.ResumeSweeper`` (plan, skip done cells, record
  dead ones); the ``gdepth sweep`` command selects it.
- ``hydra/launcher=gdepth_slurm``: hydra-submitit-launcher's Slurm launcher that waits for every
  job and reports the Slurm reason of a job that died (``gdepth.sweep.launchers.SlurmMixin``);
  ``configs/launcher/slurm.yaml`` selects it.

The logic lives in ``gdepth``; these are the names Hydra can find.
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from gdepth.sweep.launchers import SlurmMixin, register_resolvers
from gdepth.sweep.sweeper import ResumeSweeper


class GdepthSweeper(ResumeSweeper):
    """See ``gdepth.sweep.sweeper.ResumeSweeper``."""


class GdepthSlurmLauncher(SlurmMixin, SlurmLauncher):
    """See ``gdepth.sweep.launchers.SlurmMixin``."""


@dataclass
class GdepthSweeperConf:
    _target_: str = "hydra_plugins.gdepth_plugins.GdepthSweeper"
    max_batch_size: Any = None
    params: Any = None


@dataclass
class GdepthSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.gdepth_plugins.GdepthSlurmLauncher"


register_resolvers()
ConfigStore.instance().store(group="hydra/sweeper", name="gdepth", node=GdepthSweeperConf,
                             provider="gdepth")
ConfigStore.instance().store(group="hydra/launcher", name="gdepth_slurm", node=GdepthSlurmConf,
                             provider="gdepth")
