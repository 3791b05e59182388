"""RL's rollouts against ``omniactor eval``'s harness, and the update's share of an iteration, in one run.

On one agent and in real BabyAI (the same spawned environment workers):

- **eval harness**: ``evaluation.online.evaluate`` with sampled decoding, the agent in process;
- **RL rollout**: ``rl.rollout.collect``, the same loop with the agent recording every act
  (prompt tokens, images, log-probabilities) and the step hooks keeping rewards;
- **update**: ``rl.learner.Learner.update`` (PPO, 2 epochs x 2 minibatches) on the rollout's steps.

The two rollout paths alternate for ``--rounds`` rounds (the machine's noise hits both) on the
same episode seeds. Reported: environment steps per second of each (their ratio: goal >= 0.9),
and the update's seconds over the iteration's (rollout + update).

    python benchmarks/bench_rl.py --json                      # a tiny 0-step checkpoint, ~3 min on 2 cores
    python benchmarks/bench_rl.py --checkpoint RUN/final --env-config '{"state_format": "onehot"}' --json

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def make_checkpoint(root: Path) -> Path:
    """The tiny preset with the example dataset's domains, 0 training steps (a real checkpoint's code path)."""
    from omniactor.data.example import write_example_dataset
    from omniactor.training.config import load_config
    from omniactor.training.loop import train

    write_example_dataset(root / "data", episodes_per_domain=2, seed=0)
    domains = ("domains={gui: {history: 2, image_size: 56}, embodied: {history: 2, image_size: 56}, "
               "discrete: {action_tokenizer: discrete_semlang, output: tokens, history: 1, image_size: 56}}")
    train(load_config(None, [f"data=[{root / 'data'}]", f"output_dir={root / 'run'}", "max_steps=0", domains,
                             "system_prompt=none", f"cache_dir={root / 'cache'}"]), progress=False)
    return root / "run" / "final"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="an agent's final/ folder with a domain acting in BabyAI "
                        "(default: a tiny 0-step checkpoint)")
    parser.add_argument("--domain", default="discrete")
    parser.add_argument("--task", default="GoToRedBall")
    parser.add_argument("--env-config", default="{}", help="BabyAI settings as JSON (e.g. '{\"max_steps\": 32}')")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per path per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="(the last line is always the JSON object)")
    args = parser.parse_args()

    from omniactor.agent import Agent
    from omniactor.data.collect import episode_seed
    from omniactor.evaluation.online import EnvWorker, EvalConfig, evaluate
    from omniactor.rl.config import RLConfig, RolloutConfig
    from omniactor.rl.learner import Learner, trainable_parameters
    from omniactor.rl.rollout import RolloutJob, collect

    env_config = json.loads(args.env_config)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(root)
        agent = Agent.from_pretrained(checkpoint)
        sampling = {"do_sample": True, "temperature": 1.0, "seed": 0, "top_k": int(agent.vocab_size)}
        rollout = RolloutConfig(env="babyai", tasks=[args.task], env_config=env_config, episodes=args.episodes)
        config = RLConfig(init=str(checkpoint), domains={args.domain: rollout}, epochs=2, minibatches=2,
                          value_warmup=0, learning_rate=1e-5)
        pointer = next((d for d, s in agent.settings.domains.items() if s.output == "pointer"), None)
        parameters = trainable_parameters(agent.model, [args.domain], agent.settings.names, pointer, False)
        learner = Learner(agent, config, parameters)
        workers = [EnvWorker("babyai", env_config) for _ in range(args.workers)]
        rows: list[dict[str, Any]] = []
        try:
            for round_index in range(args.rounds):
                # the eval harness (its own workers, as `omniactor eval` runs)
                agent.record = False
                results = evaluate(EvalConfig(env="babyai", tasks=[args.task], episodes=args.episodes,
                                              out=str(root / f"eval-{round_index}"), split="test", domain=args.domain,
                                              env_config=env_config, workers=args.workers,
                                              agent_options={k: v for k, v in sampling.items() if k != "top_k"},
                                              progress=False), agent=agent)
                steps = sum(t["mean_steps"] * t["episodes"] for t in results["tasks"].values())
                rows.append({"path": "eval harness", "round": round_index, "env_steps": steps,
                             "seconds": results["seconds"], "steps_per_s": steps / results["seconds"]})
                # the RL rollout on the same seeds, recording every act
                agent.record = True
                agent.set_decoding(**sampling)
                jobs = [RolloutJob(results["tasks"] and next(iter(results["tasks"])), i,
                                   episode_seed(0, "test", i)) for i in range(args.episodes)]
                batch = collect(agent, args.domain, rollout, jobs, workers, root / f"rollout-{round_index}")
                rows.append({"path": "rl rollout", "round": round_index, "env_steps": batch.steps,
                             "seconds": batch.seconds, "steps_per_s": batch.steps / batch.seconds})
                started = time.perf_counter()
                learner.update([batch], iteration=round_index)
                update_s = time.perf_counter() - started
                rows.append({"path": "update", "round": round_index, "env_steps": batch.steps, "seconds": update_s,
                             "share_of_iteration": update_s / (update_s + batch.seconds)})
                agent.record = False
        finally:
            for worker in workers:
                worker.close()
    for row in rows:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    def rate(path: str) -> float:
        chosen = [r for r in rows if r["path"] == path]
        return sum(r["env_steps"] for r in chosen) / sum(r["seconds"] for r in chosen)

    updates = [r for r in rows if r["path"] == "update"]
    rollouts = [r for r in rows if r["path"] == "rl rollout"]
    summary = {"benchmark": "rl", "env": "babyai", "task": args.task, "episodes_per_round": args.episodes,
               "rounds": args.rounds, "workers": args.workers,
               "eval_steps_per_s": round(rate("eval harness"), 2), "rollout_steps_per_s": round(rate("rl rollout"), 2),
               "rollout_vs_eval": round(rate("rl rollout") / rate("eval harness"), 3),
               "update_share": round(sum(r["seconds"] for r in updates)
                                     / (sum(r["seconds"] for r in updates) + sum(r["seconds"] for r in rollouts)), 3),
               "update_s_per_step": round(sum(r["seconds"] for r in updates) / sum(r["env_steps"] for r in updates), 4),
               "goal_rollout_vs_eval": 0.9}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
