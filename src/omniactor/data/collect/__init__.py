"""Expert demonstration collection: run an environment's scripted expert, write unified samples.

``collect(CollectConfig(env="metaworld", tasks=["reach-v3"], episodes=50, out="data/mw"))``
runs each task's episodes with the expert and writes one record per step (the
instruction, the image(s), the previous actions in the prompt, the expert's action) into
a dataset folder that ``omniactor data validate`` accepts.

- **Deterministic**: episode ``i`` of split ``s`` has seed ``SPLIT_OFFSETS[s] + seed + i``;
  the splits never share a seed, and the same seed gives the same episode whatever the
  number of workers.
- **Parallel**: ``workers`` processes, each with its own environment (browser, simulator).
- **Atomic episodes**: a worker buffers whole episodes and commits them in batches: one
  ``DatasetWriter`` per batch writes one shard, then a sidecar ``.collect/commits/<shard>.json``
  naming its episodes, then merges into ``manifest.json`` -- the commit point. A shard the
  manifest does not list was never committed: the next run moves it (with its images and
  sidecar) to ``.collect/discarded/``, so the folder never holds half an episode.
- **Resumable**: episodes named in committed sidecars (and failed episodes, recorded in
  ``.collect/failed/``) are skipped when the same command runs again.
- **Recovering**: when the browser or simulator dies mid-episode, the worker discards that
  episode, starts a new environment and runs it again (``max_restarts`` times), counting restarts.
- Failed expert episodes are left out (``keep_failed`` keeps them, with ``meta.success = false``)
  and counted in the summary.
- **Beside the loop**: each worker hands finished episodes to a ``Committer``: PNGs are
  encoded on a thread (large images, Pillow) or in a committer process (small ones, with the
  direct encoder of ``png``), and samples are built, validated and written in that process,
  so the environment loop rarely waits.

Modules, one concern each:

- ``config``: ``CollectConfig``, ``Job``, ``episode_seed`` / ``plan_jobs`` (what, and the seeds);
- ``ledger``: ``Ledger``, the folder's bookkeeping (lock, settings, commits, failures, recovery);
- ``episode``: ``Episode`` and ``run_episode`` (one episode, also used by the evaluations);
- ``png``: a fast PNG encoder for the small images of grid worlds;
- ``commit``: ``Committer`` / ``CommitLoop`` (encoding, building, validating, writing, committing);
- ``worker``: ``run_worker`` (one environment at a time, restarts) and the worker process;
- ``summary``: ``TaskSummary`` / ``CollectSummary``, the end-of-run report;
- ``run``: ``collect`` (the run: lock, recovery, resume, workers, progress, summary).
"""

from __future__ import annotations

from .commit import SMALL_IMAGE_PIXELS, CommitLoop, Committer
from .config import SPLIT_OFFSETS, STATE_DIR, CollectConfig, CollectError, Job, episode_seed, plan_jobs
from .episode import Episode, run_episode
from .ledger import Ledger
from .run import collect
from .summary import CollectSummary, TaskSummary
from .worker import run_worker

__all__ = [
    "SMALL_IMAGE_PIXELS",
    "SPLIT_OFFSETS",
    "STATE_DIR",
    "CollectConfig",
    "CollectError",
    "CollectSummary",
    "CommitLoop",
    "Committer",
    "Episode",
    "Job",
    "Ledger",
    "TaskSummary",
    "collect",
    "episode_seed",
    "plan_jobs",
    "run_episode",
    "run_worker",
]
