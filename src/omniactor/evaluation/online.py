"""Online evaluation: roll a policy out in real environments and count successes.

``evaluate(config)`` runs ``episodes`` episodes of each task on seeds of the chosen split
(``test`` by default: disjoint from the ``train`` seeds demonstrations were collected on),
with ``workers`` environment processes:

- ``policy="agent"``: the agent lives in this process and acts for every running
  environment in one batched generation per step (``Agent.act_batch``); the environments
  step in parallel in their processes. One copy of the model, however many environments.
- ``policy="expert"``: each worker runs the scripted expert exactly as
  ``omniactor collect`` does (``data.collect.run_episode``), so the harness reproduces
  the experts' measured rates (the harness check).

Failures are never fatal: an environment that dies (a browser, a simulator) is restarted,
the episode is run again from its seed and the restart counted; an action the environment
refuses ends that episode as a failure (``refused_action``). Finished episodes are
appended to ``episodes.jsonl`` as they end, so re-running the same command continues
where it stopped. Each agent episode's record carries ``trajectory``, a digest of its actions,
so two runs can be compared episode by episode (``compare_runs``). At the end: ``results.json``,
``report.md``, ``success.png``
(``evaluation.results``) and, with ``save_episodes``, a GIF and an image strip of the
first episodes of each task.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OmniactorError
from ..fileio import JsonLinesAppender, read_json_lines, write_text_atomic

EPISODES_FILE = "episodes.jsonl"
CONFIG_FILE = "eval_config.json"
#: the agent options that choose how answers are decoded (``Agent.set_decoding``)
DECODING_OPTIONS = ("do_sample", "temperature", "top_k", "seed")


class EvalError(OmniactorError, RuntimeError):
    """The evaluation cannot run as configured (the message says what to change)."""


@dataclass
class EvalConfig:
    env: str
    tasks: list[str]
    episodes: int
    out: str
    checkpoint: str | None = None
    policy: str = "agent"  # agent | expert
    workers: int = 1
    seed: int = 0
    split: str = "test"
    env_config: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None  # the model's domain for this environment (default: the environment's)
    save_episodes: int = 0  # GIF + strip of the first N episodes of each task
    agent_options: dict[str, Any] = field(default_factory=dict)  # constrained, do_sample, temperature, ...
    max_restarts: int = 3
    progress: bool = True
    server: str | None = None  # the agent behind ``omniactor serve`` at this URL, instead of a checkpoint
    token: str | None = None  # the server's bearer token (never written to the output)
    actions: list[str] | None = None  # the agent's domain acts only by these (a classification head's)

    def identity(self) -> dict[str, Any]:
        """What makes two runs' episodes interchangeable (a resumed run must match; the device
        and the number of workers do not change what an episode is)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("tasks", "episodes", "workers", "out",
                                                                   "save_episodes", "progress", "max_restarts",
                                                                   "token")}
        data["agent_options"] = {k: v for k, v in self.agent_options.items() if k != "device"}
        return data


@dataclass
class Job:
    task: str
    index: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}/{self.seed}"


# ---------------------------------------------------------------------------- environment workers


#: the key of a portable observation's ``extra`` that holds the expert's suggested action (``expert_labels``)
EXPERT_ACTION = "expert_action"


def _portable(observation: Any, suggestion: Any = None) -> Any:
    """The observation without ``extra`` (privileged, possibly unpicklable data the agent never
    sees); with ``suggestion``, ``extra`` holds only the expert's action for it (``EXPERT_ACTION``)."""
    return replace(observation, extra={} if suggestion is None else {EXPERT_ACTION: suggestion})


class _Advisor:
    """The environment's expert beside another policy (``EnvWorker(expert_labels=True)``): its
    suggestion for each state that policy reaches, while it can give one (``Expert.follows``; an
    expert that raises gives none for the rest of the episode)."""

    def __init__(self, env_name: str):
        self.env_name = env_name
        self.expert: Any = None
        self.suggestion: Any = None

    def start(self, env: Any, observation: Any) -> Any:
        from ..envs.registry import make_expert

        self.expert = make_expert(self.env_name, env)
        self.expert.reset(env, observation)
        return self._ask(observation)

    def after(self, taken: Any, observation: Any, done: bool) -> Any:
        """The suggestion for ``observation``, reached by ``taken`` (None: none)."""
        if self.expert is not None and (done or not self.expert.follows(taken, self.suggestion)):
            self.expert = None
        return self._ask(observation)

    def _ask(self, observation: Any) -> Any:
        self.suggestion = None
        if self.expert is not None:
            try:
                self.suggestion = self.expert.act(observation)
            except Exception:  # noqa: BLE001 - the expert is lost for this episode; the steps go unlabelled
                self.expert = None
        return self.suggestion


def _worker_main(conn: Any, env_name: str, env_config: dict[str, Any], expert_labels: bool = False) -> None:
    """One environment process: commands in, results out, until ``close``. With ``expert_labels``
    each observation ``reset`` and ``step`` return carries the expert's action for it (``_Advisor``)."""
    from ..data.collect import Job as CollectJob
    from ..data.collect import run_episode
    from ..envs.base import EnvError
    from ..envs.registry import make_env, make_expert

    env = None
    advisor = _Advisor(env_name) if expert_labels else None
    while True:
        try:
            command, args = conn.recv()
        except EOFError:
            break
        if command == "close":
            break
        try:
            if command in ("reset", "expert"):
                task, seed = args[0], args[1]
                if env is None or env.task != task:
                    if env is not None:
                        env.close()
                    env = None
                    env = make_env(env_name, task, **env_config)
            if command == "reset":
                observation = env.reset(seed)
                suggestion = advisor.start(env, observation) if advisor else None
                conn.send(("ok", (_portable(observation, suggestion), env.max_steps)))
            elif command == "step":
                try:
                    result = env.step(args[0])
                except EnvError:
                    raise
                except (TypeError, ValueError) as err:
                    conn.send(("refused", f"{type(err).__name__}: {err}"))
                    continue
                suggestion = advisor.after(args[0], result.observation, result.done) if advisor else None
                conn.send(("ok", (_portable(result.observation, suggestion), result.terminated, result.truncated,
                                  result.success, result.reward)))
            elif command == "expert":
                keep_frames = args[2]
                expert = make_expert(env_name, env)
                episode = run_episode(env, expert, CollectJob(task, 0, seed, "eval"))
                frames = [images[0] for images in episode.images] if keep_frames else []
                cause = ("expert_error" if episode.error else "timeout" if len(episode.actions) >= env.max_steps
                         else "failed")
                conn.send(("ok", {"success": episode.success, "steps": len(episode.actions),
                                  "cause": None if episode.success else cause, "error": episode.error,
                                  "instruction": episode.instruction[0] if episode.instruction else "",
                                  "frames": frames}))
            else:
                conn.send(("error", f"unknown command {command!r}"))
        except EnvError as err:
            if env is not None:
                with contextlib.suppress(Exception):  # a dead browser may not close cleanly
                    env.close()
            env = None
            conn.send(("env_error", str(err)[:500]))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which stops the run with it
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
    if env is not None:
        env.close()


class EnvWorker:
    """An environment in its own process (spawned fresh: no inherited threads or GL contexts).
    ``expert_labels``: each observation it returns carries its expert's suggested action in
    ``extra[EXPERT_ACTION]`` while the expert can give one (online RL's ``expert_coef``)."""

    #: a command that takes longer than this (a frozen browser or simulator) counts as a dead environment
    TIMEOUT_S = 600.0

    def __init__(self, env_name: str, env_config: dict[str, Any], expert_labels: bool = False):
        self.env_name, self.env_config, self.expert_labels = env_name, env_config, expert_labels
        self.start()

    def start(self) -> None:
        context = mp.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main,
                                       args=(child, self.env_name, self.env_config, self.expert_labels), daemon=True)
        self.process.start()
        child.close()

    def send(self, command: str, *args: Any) -> None:
        self.conn.send((command, args))

    def receive(self) -> tuple[str, Any]:
        """``(status, payload)``; a dead process reads as ``env_error`` (and is restarted)."""
        try:
            if not self.conn.poll(self.TIMEOUT_S):
                self.restart()
                return "env_error", f"the environment did not answer within {self.TIMEOUT_S:.0f} s"
            return self.conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            self.restart()
            return "env_error", "the environment process died"

    def send_safely(self, command: str, *args: Any) -> bool:
        """Send a command; a dead process is restarted and False returned (the caller retries the episode)."""
        try:
            self.send(command, *args)
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.restart()
            return False

    def call(self, command: str, *args: Any) -> tuple[str, Any]:
        if not self.send_safely(command, *args):
            return "env_error", "the environment process died"
        return self.receive()

    def restart(self) -> None:
        self.close(timeout=1.0)
        self.start()

    def close(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError, ValueError):  # the pipe of a dead process
            self.send("close")
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# ---------------------------------------------------------------------------- the run


def plan(config: EvalConfig) -> list[Job]:
    from ..data.collect import SPLIT_OFFSETS, episode_seed

    if config.split not in SPLIT_OFFSETS:
        raise EvalError(f"split {config.split!r} is not one of {list(SPLIT_OFFSETS)}")
    return [Job(task, i, episode_seed(config.seed, config.split, i)) for task in config.tasks
            for i in range(config.episodes)]


def _finished(out: Path, config: EvalConfig) -> dict[str, dict[str, Any]]:
    """Episodes a previous run of the same evaluation already finished (by key)."""
    config_file = out / CONFIG_FILE
    if config_file.exists():
        previous = json.loads(config_file.read_text())
        # a key added since (absent there, None here) changes nothing
        changed = sorted(k for k in set(previous) | set(config.identity())
                         if previous.get(k) != config.identity().get(k))
        if changed:
            raise EvalError(f"{out} holds an evaluation with other settings ({', '.join(changed)}); "
                            "give another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config_file, json.dumps(config.identity(), indent=2))
    records, _ = read_json_lines(out / EPISODES_FILE)  # a line cut by a crash is dropped: that episode runs again
    return {record["key"]: record for record in records}


class Recorder:
    """Appends finished episodes to ``episodes.jsonl`` and saves the first episodes' frames."""

    def __init__(self, out: Path, save_episodes: int, bar: Any):
        self.out, self.save_episodes, self.bar = out, save_episodes, bar
        self.file = JsonLinesAppender(out / EPISODES_FILE)  # each line whole or absent
        self.dropped = self.file.dropped  # a last line cut by a crash, cut off: its episode runs again
        self.successes = self.count = 0

    def wants_frames(self, job: Job) -> bool:
        return job.index < self.save_episodes

    def record(self, job: Job, record: dict[str, Any], frames: list[np.ndarray]) -> dict[str, Any]:
        record = {"key": job.key, "task": job.task, "index": job.index, "seed": job.seed, **record}
        self.file.append(record)
        if frames:
            save_frames(frames, self.out / "episodes" / f"{job.task}-{job.index}", bool(record["success"]))
        self.count += 1
        self.successes += int(bool(record["success"]))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(success=f"{self.successes}/{self.count}", refresh=False)
        return record

    def close(self) -> None:
        self.file.close()


def evaluate(config: EvalConfig, agent: Any = None) -> dict[str, Any]:
    """Run the evaluation (continuing a previous run in ``config.out``); returns the results."""
    from ..envs.registry import get_spec, resolve_tasks

    if config.policy not in ("agent", "expert"):
        raise EvalError(f"policy {config.policy!r} is not 'agent' or 'expert'")
    if config.episodes < 1 or config.workers < 1:
        raise EvalError("episodes and workers must be at least 1")
    spec = get_spec(config.env)
    missing = spec.missing()
    if missing:
        raise EvalError(f"environment {config.env!r} cannot run: missing {', '.join(missing)}; "
                        f"install with: {spec.install_hint()}")
    config.tasks = resolve_tasks(config.env, config.tasks)
    domain = config.domain or spec.domain
    if config.policy == "agent" and agent is None and config.server:
        from ..serving.client import RemoteAgent

        agent = RemoteAgent(config.server, config.token)  # decodes as the server was started
    elif config.policy == "agent" and agent is None:
        if not config.checkpoint:
            raise EvalError("policy 'agent' needs --checkpoint DIR (a training run's final/ folder) or --server URL")
        from ..agent import Agent

        agent = Agent.from_pretrained(config.checkpoint, **config.agent_options)
    elif agent is not None:  # an agent serving several evaluations decodes as this one says
        agent.set_decoding(**{k: v for k, v in config.agent_options.items() if k in DECODING_OPTIONS})
    if agent is not None and domain not in agent.settings.domains:
        raise EvalError(f"the model has no domain {domain!r} (its domains: {agent.settings.domains}); "
                        "pass --domain to say which of its domains acts in this environment")
    if config.actions is not None:
        if not hasattr(agent, "restrict_actions"):
            raise EvalError("--actions restricts a local agent (--checkpoint); a served agent acts as the server "
                            "was started")
        try:
            agent.restrict_actions(domain, config.actions)
        except OmniactorError as err:
            raise EvalError(str(err)) from None
    out = Path(config.out)
    done = _finished(out, config)
    jobs = plan(config)
    todo = deque(job for job in jobs if job.key not in done)
    started = time.monotonic()
    bar = None
    if config.progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="ep", desc=f"eval {config.env} ({config.policy})", dynamic_ncols=True)
    recorder = Recorder(out, config.save_episodes, bar)
    workers = [EnvWorker(config.env, config.env_config) for _ in range(min(config.workers, max(len(todo), 1)))]
    restarts = 0
    threads = cpu_threads_beside(agent, len(workers))
    stats_before = dict(agent.stats) if agent is not None else {}
    torch_threads = None
    if getattr(agent, "model", None) is not None:
        import torch

        torch_threads = torch.get_num_threads()  # the agent's float sums depend on it
    try:
        if todo:
            run = _run_expert if config.policy == "expert" else _run_agent
            restarts = run(config, agent, domain, workers, todo, recorder)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        recorder.close()
        for worker in workers:
            worker.close()
        if bar is not None:
            bar.close()
    return finish(config, out, restarts, time.monotonic() - started, agent, stats_before, torch_threads,
                  recorder.dropped)


def cpu_threads_beside(agent: Any, env_processes: int) -> int | None:
    """Leave the environment processes their cores: a CPU model acts with the cores left over.

    Torch's threads spin while they wait for work; with the environments stepping on the
    same cores, a 2-core machine ran a tiny model's step 10x slower with 2 threads than with
    1 (measured). Returns the previous thread count to restore (None when nothing changed).
    """
    if getattr(agent, "model", None) is None or next(agent.model.parameters()).device.type != "cpu":
        return None
    import torch

    previous = torch.get_num_threads()
    wanted = max(1, min(previous, (os.cpu_count() or 1) - env_processes))
    if wanted == previous:
        return None
    torch.set_num_threads(wanted)
    return previous


def finish(config: EvalConfig, out: Path, restarts: int, seconds: float, agent: Any = None,
           stats_before: dict[str, int] | None = None, torch_threads: int | None = None,
           cut_lines: int = 0) -> dict[str, Any]:
    """Summarise ``episodes.jsonl`` (this run's episodes and earlier ones) into the result files;
    ``torch_threads``: the agent's thread count (its float sums, and so its answers, depend on it);
    ``cut_lines``: lines of ``episodes.jsonl`` an interrupted run left cut, dropped (their episodes ran again)."""
    from .results import summarize, write_results

    wanted = {job.key for job in plan(config)}
    episodes = [r for r in _finished(out, config).values() if r["key"] in wanted]
    results = {"env": config.env, "policy": config.policy, "checkpoint": config.checkpoint, "split": config.split,
               "seed": config.seed, "restarts": restarts, "seconds": round(seconds, 1),
               **summarize(episodes, config.tasks)}
    if cut_lines:
        results["cut_lines_dropped"] = cut_lines
    if agent is not None:  # this run's answers (an agent may serve several evaluations)
        before = stats_before or {}
        results["decoding"] = {"constrained": agent.constrained, "do_sample": agent.do_sample,
                               **({"temperature": agent.temperature, "seed": agent.seed} if agent.do_sample else {}),
                               "invalid_answers": int(agent.stats.get("invalid", 0) - before.get("invalid", 0)),
                               "answers": int(agent.stats.get("actions", 0) - before.get("actions", 0))}
        if torch_threads is not None:
            results["torch_threads"] = torch_threads
    title = f"{config.env}: {config.policy}" + (f" ({Path(config.checkpoint).name})" if config.checkpoint else "")
    write_results(out, results, title)
    return results


def _run_expert(config: EvalConfig, agent: Any, domain: str, workers: list[EnvWorker], todo: deque,
                recorder: Recorder) -> int:
    """Whole expert episodes inside the workers, one per worker at a time."""
    restarts = 0
    attempts: dict[str, int] = {}
    running: dict[int, Job] = {}
    while todo or running:
        for w, worker in enumerate(workers):
            if w not in running and todo:
                job = todo.popleft()
                running[w] = job
                if not worker.send_safely("expert", job.task, job.seed, recorder.wants_frames(job)):
                    worker.send_safely("expert", job.task, job.seed, recorder.wants_frames(job))  # fresh process
        for w in list(running):
            status, payload = workers[w].receive()
            job = running.pop(w)
            if status == "ok":
                frames = payload.pop("frames")
                recorder.record(job, {**payload, "invalid": 0, "actions": payload["steps"]}, frames)
                continue
            restarts += 1
            attempts[job.key] = attempts.get(job.key, 0) + 1
            if status == "error":
                raise EvalError(f"{job.key}: {payload}")
            if attempts[job.key] > config.max_restarts:
                recorder.record(job, {"success": False, "steps": 0, "cause": "env_error", "error": payload}, [])
            else:
                todo.appendleft(job)
    return restarts


@dataclass
class _Slot:
    job: Job
    episode: Any
    observation: Any
    max_steps: int
    steps: int = 0
    invalid: int = 0
    frames: list[np.ndarray] = field(default_factory=list)
    actions: Any = field(default_factory=hashlib.sha256)  # the digest of the actions taken

    def take(self, action: Any) -> None:
        from ..actions import format_action

        self.actions.update((format_action(action) + "\n").encode())

    @property
    def trajectory(self) -> str:
        return self.actions.hexdigest()[:16]


class StepHooks:
    """What a caller of the agent loop (``_run_agent``) sees besides the finished episodes: online RL
    keeps each step's answer and reward. ``started`` gets the episode's first observation; it is
    called again when a dead environment's episode runs again from its seed (the steps before
    belong to no episode)."""

    def started(self, job: Job, observation: Any) -> None:
        pass

    def stepped(self, job: Job, episode: Any, answer: Any, reward: float, terminated: bool, truncated: bool,
                observation: Any) -> None:
        pass


def _run_agent(config: EvalConfig, agent: Any, domain: str, workers: list[EnvWorker], todo: deque,
               recorder: Recorder, hooks: StepHooks | None = None) -> int:
    """All running environments act through one batched ``Agent`` call per step; ``hooks`` see
    each step (an action the environment refuses ends the episode: terminated, reward 0)."""
    hooks = hooks or StepHooks()
    restarts = 0
    attempts: dict[str, int] = {}
    slots: dict[int, _Slot] = {}

    def failed_env(w: int, job: Job, message: str) -> None:
        nonlocal restarts
        restarts += 1
        attempts[job.key] = attempts.get(job.key, 0) + 1
        if attempts[job.key] > config.max_restarts:
            recorder.record(job, {"success": False, "steps": 0, "cause": "env_error", "error": message}, [])
        else:
            todo.appendleft(job)

    while todo or slots:
        for w, worker in enumerate(workers):  # start episodes on idle workers
            while w not in slots and todo:
                job = todo.popleft()
                status, payload = worker.call("reset", job.task, job.seed)
                if status == "error":
                    raise EvalError(f"{job.key}: {payload}")
                if status != "ok":
                    failed_env(w, job, payload)
                    continue
                observation, max_steps = payload
                # the episode samples from its own stream (task and seed): not from the batch it lands in
                slot = _Slot(job, agent.start(observation.instruction, domain, seed=job.key), observation, max_steps)
                hooks.started(job, observation)
                if recorder.wants_frames(job):
                    slot.frames.append(observation.image)
                slots[w] = slot
        if not slots:
            break
        active = sorted(slots)
        decided = agent.act_batch([slots[w].episode for w in active], [slots[w].observation for w in active],
                                  details=True)
        sent = {}
        for w, answer in zip(active, decided):
            slots[w].invalid += int(not answer.valid)
            slots[w].take(answer.action)
            sent[w] = workers[w].send_safely("step", answer.action)
        for w in active:
            slot = slots[w]
            status, payload = workers[w].receive() if sent[w] else ("env_error", "the environment process died")
            if status == "error":
                raise EvalError(f"{slot.job.key}: {payload}")
            if status == "env_error":
                del slots[w]
                failed_env(w, slot.job, payload)
                continue
            slot.steps += 1
            record = {"steps": slot.steps, "invalid": slot.invalid, "actions": slot.steps,
                      "instruction": slot.episode.instruction, "trajectory": slot.trajectory}
            if status == "refused":
                hooks.stepped(slot.job, slot.episode, decided[active.index(w)], 0.0, True, False, slot.observation)
                recorder.record(slot.job, {"success": False, "cause": "refused_action", "error": payload, **record},
                                slot.frames)
                del slots[w]
                continue
            observation, terminated, truncated, success, reward = payload
            hooks.stepped(slot.job, slot.episode, decided[active.index(w)], reward, terminated, truncated, observation)
            slot.observation = observation
            if slot.frames:
                slot.frames.append(observation.image)
            if terminated or truncated:
                cause = None if success else ("timeout" if truncated and not terminated else "failed")
                recorder.record(slot.job, {"success": bool(success), "cause": cause, **record}, slot.frames)
                del slots[w]
    return restarts


def compare_runs(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Two evaluations' ``episodes.jsonl`` episode by episode: ``{"episodes": shared, "same": n,
    "different": [keys whose success, steps or actions differ]}`` (what reproducing a run means)."""
    def load(folder: str | Path) -> dict[str, dict[str, Any]]:
        lines = (Path(folder) / EPISODES_FILE).read_text().splitlines()
        return {r["key"]: r for r in (json.loads(line) for line in lines if line.strip())}

    first, second = load(a), load(b)
    shared = sorted(set(first) & set(second))
    fields = ("success", "steps", "trajectory")
    different = [k for k in shared if any(first[k].get(f) != second[k].get(f) for f in fields)]
    return {"episodes": len(shared), "same": len(shared) - len(different), "different": different}


# ---------------------------------------------------------------------------- episode pictures


def save_frames(frames: list[np.ndarray], stem: Path, success: bool, strip_frames: int = 8) -> None:
    """``stem.gif`` (every frame) and ``stem.png`` (up to ``strip_frames`` frames side by side)."""
    from PIL import Image

    stem.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    images[0].save(stem.with_suffix(".gif"), save_all=True, append_images=images[1:], duration=150, loop=0)
    picks = np.linspace(0, len(images) - 1, num=min(strip_frames, len(images))).round().astype(int)
    height = max(images[i].height for i in picks)
    strip = Image.new("RGB", (sum(images[i].width for i in picks) + 2 * (len(picks) - 1), height + 4),
                      (40, 160, 60) if success else (190, 50, 50))
    x = 0
    for i in picks:
        strip.paste(images[i].convert("RGB"), (x, 4))
        x += images[i].width + 2
    strip.save(stem.with_suffix(".png"))
