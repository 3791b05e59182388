"""GEA's SFT term: ``sft_coef`` times the supervised loss on demonstrations, beside the RL loss.

The demonstrations of the RL domains in ``sft_data`` are encoded exactly as ``omniactor train``
encodes them (``training.data.SampleEncoder`` with the agent's prompt settings, the same
preprocessed cache), and each minibatch draws ``sft_batch_size`` of them per domain at positions
fixed by (seed, iteration, epoch, minibatch), so the draw is the same on any number of processes
(each takes its slice). The loss is the one SFT minimises: cross-entropy over the answer tokens
plus the action head's loss (MSE or cross-entropy) for a head domain.
"""

from __future__ import annotations

import hashlib
from typing import Any


class Demonstrations:
    def __init__(self, agent: Any, config: Any):
        from ..training.config import SourceConfig
        from ..training.data import (
            PreprocessedCache,
            SampleEncoder,
            cache_root,
            collect_items,
            fingerprint,
            folder_state,
            processor_state,
        )
        from ..training.loop import canonical_order

        self.agent, self.config = agent, config
        settings = agent.settings.domains
        domains = list(config.domains)
        sources = [SourceConfig(path=p) for p in config.sft_data]
        items, _ = collect_items(sources, list(settings), skip_invalid=True)
        items = [i for i in items if i.domain in domains]
        if not items:
            raise ValueError(f"sft_data holds no record of the RL domains {domains}")
        items = canonical_order(items)
        prompts = {settings[d].system_prompt for d in domains}
        system = "none" if prompts == {""} else next(iter(prompts)) if len(prompts) == 1 else "sample"
        heads = {d: a for d, a in agent.adapters.items() if not a.writes_answer}
        encoder = SampleEncoder(agent.processor, agent.action_tokenizers, {d: s.history for d, s in settings.items()},
                                {d: s.image_size for d, s in settings.items()}, system, agent.state_widths(), heads)
        key = fingerprint([[folder_state(s.path) for s in sources], processor_state(agent.processor),
                           {d: t.config() for d, t in agent.action_tokenizers.items()}, domains, system, "rl sft"])
        self.dataset = PreprocessedCache.open_or_build(cache_root(config.cache_dir, config.output_dir) / key, items,
                                                       encoder, progress=False)
        self.members = {d: [i for i, name in enumerate(self.dataset.domains) if name == d] for d in domains}
        self.members = {d: m for d, m in self.members.items() if m}

    def draw(self, domain: str, iteration: int, epoch: int, minibatch: int) -> list[int]:
        members = self.members[domain]
        picks = []
        for k in range(self.config.sft_batch_size):
            digest = hashlib.sha256(f"{self.config.seed}/{domain}/{iteration}/{epoch}/{minibatch}/{k}".encode())
            picks.append(members[int.from_bytes(digest.digest()[:8], "little") % len(members)])
        return picks

    def backward(self, coefficient: float, iteration: int, epoch: int, minibatch: int, world: int = 1,
                 rank: int = 0) -> float:
        """Accumulate ``coefficient`` x the SFT loss of this minibatch's demonstrations (this process's
        slice, scaled so the processes' gradients sum to the whole draw's); returns the loss."""
        from ..training.data import collate
        from ..training.loop import answer_loss, pop_head_target, take_state

        model = self.agent.model
        device = next(model.parameters()).device
        total = 0.0
        for domain in self.members:
            picks = self.draw(domain, iteration, epoch, minibatch)
            mine = picks[rank::world]
            if not mine:
                continue
            batch = {k: v.to(device) for k, v in collate([self.dataset[i] for i in mine],
                                                          self.agent.tokenizer.pad_token_id).items()}
            labels = batch.pop("labels")
            target = pop_head_target(batch)
            state = take_state(model, batch)
            with self.agent._routed([domain] * len(mine)):
                out = model(**batch, output_hidden_states=target is not None)
            sums, counts = answer_loss(out.logits, labels)
            loss = sums.sum() / counts.sum().clamp(min=1)
            if target is not None:
                from ..action_adapters.heads import prompt_end_states

                adapter = self.agent.adapters[domain]
                loss = loss + adapter.head_loss(model, prompt_end_states(out.hidden_states[-1], labels), state, target)
            (coefficient * loss * len(mine) / len(picks) / len(self.members)).backward()
            total += float(loss.detach()) / len(self.members)
        return total
