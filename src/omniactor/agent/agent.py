"""``Agent``: model + processor + action tokenizers + decoding, the one inference path.

Evaluation, serving and later RL all act through it::

    agent = Agent.from_pretrained("outputs/train/tiny-omniactor/final")
    agent.reset("click the OK button", domain="gui")
    action = agent.act(observation)          # a typed action, always valid

Several environments at once: one ``Episode`` each, one batched forward pass per step::

    episodes = [agent.start(obs.instruction, env.domain) for obs, env in ...]
    actions = agent.act_batch(episodes, observations)

The prompt is the one training used (``models.chat``: the domain's system prompt, the
image(s), the task and the last ``history`` actions), as recorded in the checkpoint's
``agent.json``. Decoding is greedy or sampled; with ``constrained=True`` (the default)
every step can only write a valid action of the domain (``agent.constraints``), so the
returned action parses and lies in range whatever the weights. A domain trained with a
regression head (``regression_heads``) acts by that head by default: one forward pass over
the prompt, the head's ``[-1, 1]`` output mapped back by the domain tokenizer's normaliser;
one trained with a classification head (``classification_heads``) picks the action of the
head's highest logit, or samples the head's distribution when the agent samples
(``use_heads=False`` writes the answer tokens instead). A sampled answer of an episode
started with a ``seed`` draws from that episode's own generator, seeded by the agent's seed,
the episode's seed and the step (``step_generator``): an episode acts the same alone or in
any batch, in any order. Model output never ends
an episode: an answer that still does not decode (possible only unconstrained) becomes
the domain's no-op (``wait()``, a zero motion, the first discrete action) and is counted
in ``agent.stats``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..actions import Action, ContinuousAction, DiscreteAction, Wait, format_action
from ..actions.errors import ActionDecodeError
from ..actions.tokenizers.base import ActionTokenizer, CodeTokenizer
from ..errors import OmniactorError
from ..models.chat import end_of_turn_id
from .constraints import ActionConstraint, CodeGrammar, TextGrammar, TokenTable

AGENT_FILE = "agent.json"
TOKENIZERS_DIR = "action_tokenizers"


class AgentError(OmniactorError, RuntimeError):
    """The agent cannot act as asked (unknown domain, a checkpoint without its parts, ...)."""


@dataclass
class AgentSettings:
    """How the model was trained to be asked (saved as ``agent.json`` next to the weights)."""

    domains: list[str]
    history: int | dict[str, int] = 0  # one length, or one per domain
    image_size: int | dict[str, int] | None = None  # one size, or one per domain
    system_prompts: dict[str, str] = field(default_factory=dict)
    state_widths: dict[str, int] = field(default_factory=dict)  # domains whose prompt carries the state input
    regression_heads: list[str] = field(default_factory=list)  # domains a regression head acts for
    classification_heads: list[str] = field(default_factory=list)  # domains a classification head acts for

    @property
    def head_domains(self) -> list[str]:
        return [*self.regression_heads, *self.classification_heads]

    @property
    def state_domains(self) -> list[str]:
        return list(self.state_widths)

    def to_json(self) -> dict[str, Any]:
        return {"domains": self.domains, "history": self.history, "image_size": self.image_size,
                "system_prompts": self.system_prompts, "state_widths": self.state_widths,
                "regression_heads": self.regression_heads, "classification_heads": self.classification_heads}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentSettings:
        history = data.get("history", 0)
        widths = data.get("state_widths")
        if widths is None:  # written before states had a width per domain: one domain, width from the model
            widths = {d: 0 for d in data.get("state_domains", [])}
        return cls(list(data["domains"]), history if isinstance(history, dict) else int(history),
                   data.get("image_size"), dict(data.get("system_prompts", {})), dict(widths),
                   list(data.get("regression_heads", [])), list(data.get("classification_heads", [])))

    def save(self, directory: str | Path) -> None:
        (Path(directory) / AGENT_FILE).write_text(json.dumps(self.to_json(), indent=2))


@dataclass
class Episode:
    """One episode's task and the actions taken so far (the history the prompt shows)."""

    instruction: str
    domain: str
    actions: list[Action] = field(default_factory=list)
    seed: int | str | None = None  # the episode's own sampling stream (``Agent.step_generator``)


@dataclass
class Decoded:
    """One answer: the action, the raw text and whether it decoded without the fallback."""

    action: Action
    text: str
    valid: bool
    error: str | None = None


class Agent:
    """See the module docstring. ``do_sample``/``temperature``/``top_k`` choose the decoding."""

    def __init__(self, model: Any, processor: Any, action_tokenizers: dict[str, ActionTokenizer],
                 settings: AgentSettings, constrained: bool = True, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int = 50, seed: int | None = None,
                 max_text_chars: int | None = None, use_heads: bool = True):
        missing = [d for d in settings.domains if d not in action_tokenizers]
        if missing:
            raise AgentError(f"no action tokenizer for domain(s) {missing}")
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.action_tokenizers = action_tokenizers
        self.settings = settings
        self.constrained = constrained
        self.set_decoding(do_sample, temperature, top_k, seed)
        self.max_text_chars = max_text_chars  # typed text / app names (default: grammar.MAX_TEXT_CHARS)
        self.head_domains = set(settings.head_domains) if use_heads else set()
        self.end_id = end_of_turn_id(self.tokenizer)
        # logits have a row per embedding row (the head may be per-domain, the embeddings are one)
        self.vocab_size = max(int(model.get_input_embeddings().weight.shape[0]), len(self.tokenizer))
        self._table: TokenTable | None = None
        self._grammars: dict[str, CodeGrammar | TextGrammar] = {}
        self.stats: Counter[str] = Counter()
        self.episode: Episode | None = None

    def set_decoding(self, do_sample: bool = False, temperature: float = 1.0, top_k: int = 50,
                     seed: int | None = None) -> None:
        """Greedy (the default) or sampled decoding from here on; ``seed`` makes sampling repeatable.
        Sampling lets a memoryless policy leave the loops greedy decoding can fall into (docs/demo.md:
        BabyAI at 30% greedy, 60% sampled)."""
        self.do_sample, self.temperature, self.top_k = bool(do_sample), float(temperature), int(top_k)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.seed = seed

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | None = None, dtype: Any = None,
                        **options: Any) -> Agent:
        """An agent from a training run's ``final`` folder (model, processor, ``action_tokenizers/``, ``agent.json``)."""
        from ..actions.tokenizers import load_action_tokenizer
        from ..models.checkpoint import load_pretrained
        from ..models.local_tokenizer import allow_processors_without_torchvision

        directory = Path(directory)
        if not (directory / "config.json").exists():
            raise AgentError(f"{directory}: no config.json; give a training run's final/ folder (or a saved model)")
        tokenizers_dir = directory / TOKENIZERS_DIR
        if not tokenizers_dir.is_dir():
            raise AgentError(f"{directory}: no {TOKENIZERS_DIR}/ folder; the agent needs the action tokenizers "
                             "the model was trained with (omniactor train writes them to final/)")
        action_tokenizers = {p.name: load_action_tokenizer(p) for p in sorted(tokenizers_dir.iterdir()) if p.is_dir()}
        if (directory / AGENT_FILE).exists():
            settings = AgentSettings.from_json(json.loads((directory / AGENT_FILE).read_text()))
        else:  # a checkpoint from before agent.json: default prompt settings
            settings = AgentSettings(sorted(action_tokenizers))
        model = load_pretrained(directory, dtype=dtype, device=device)
        from transformers import AutoProcessor

        allow_processors_without_torchvision()
        processor = AutoProcessor.from_pretrained(str(directory), local_files_only=True)
        return cls(model, processor, action_tokenizers, settings, **options)

    # -- episodes --------------------------------------------------------------------------
    def start(self, instruction: str, domain: str, seed: int | str | None = None) -> Episode:
        """A new episode (for ``act_batch``); ``seed`` (e.g. the environment's task and seed) gives
        its sampled answers a stream of their own (``step_generator``)."""
        if domain not in self.settings.domains:
            raise AgentError(f"the model has no domain {domain!r}; its domains: {self.settings.domains}")
        return Episode(instruction, domain, seed=seed)

    def reset(self, instruction: str, domain: str, seed: int | str | None = None) -> None:
        """Start the episode ``act`` continues."""
        self.episode = self.start(instruction, domain, seed)

    def step_generator(self, episode: Episode) -> torch.Generator | None:
        """The generator the next sampled answer of ``episode`` draws from: seeded by a hash of the
        agent's seed, the episode's seed and its step, so the draws do not depend on the other
        episodes of a batch, on the order episodes run in, or on a resumed evaluation. None (the
        agent's shared generator, or torch's when the agent has no seed) when a seed is missing."""
        if self.seed is None or episode.seed is None:
            return None
        digest = hashlib.sha256(f"{self.seed}/{episode.seed}/{len(episode.actions)}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def act(self, observation: Any) -> Action:
        """The next action of the episode started by ``reset``."""
        if self.episode is None:
            raise AgentError("call reset(instruction, domain) before act()")
        return self.act_batch([self.episode], [observation])[0]

    def act_batch(self, episodes: Sequence[Episode], observations: Sequence[Any],
                  details: bool = False) -> list[Action] | list[Decoded]:
        """One action per episode from its observation (one batched generation); histories grow.
        ``details=True`` returns the ``Decoded`` answers (action, raw text, validity) instead."""
        if len(episodes) != len(observations):
            raise AgentError(f"{len(episodes)} episodes but {len(observations)} observations")
        requests = [(ep.domain, ep.instruction, list(obs.images.values()), ep.actions, obs.state)
                    for ep, obs in zip(episodes, observations)]
        decoded = self.decide(requests, [self.step_generator(ep) for ep in episodes] if self.do_sample else None)
        for episode, answer in zip(episodes, decoded):
            episode.actions.append(answer.action)
        return decoded if details else [d.action for d in decoded]

    def predict_sample(self, sample: Any, images: Sequence[Any], previous: Sequence[Action]) -> Action:
        """The action for a recorded step (offline evaluation): its instruction, images and earlier actions."""
        instruction = sample.meta.get("instruction")
        if instruction is None:
            raise AgentError(f"episode {sample.episode} step {sample.step}: no meta.instruction to build the prompt")
        request = (sample.domain, instruction, list(images), list(previous), sample.meta.get("state"))
        return self.decide([request])[0].action

    # -- decoding --------------------------------------------------------------------------
    def prompt(self, domain: str, instruction: str, previous: Sequence[Action]) -> tuple[str, str]:
        """``(system, human text)`` as in training."""
        from ..data.prompts import human_turn
        from ..models.chat import per_domain, with_state_marker

        history = per_domain(self.settings.history, domain)
        shown = list(previous)[-history:] if history else []
        text = human_turn(instruction, 0, [format_action(a) for a in shown])
        if domain in self.settings.state_domains:
            text = with_state_marker(text)
        return self.settings.system_prompts.get(domain, ""), text

    def decide(self, requests: Sequence[tuple],
               generators: Sequence[torch.Generator | None] | None = None) -> list[Decoded]:
        """One answer per ``(domain, instruction, images, previous actions[, state])``: generated and
        decoded, or from the domain's action head. ``generators``: each request's sampling
        generator (None: the agent's)."""
        by_head = [i for i, r in enumerate(requests) if r[0] in self.head_domains]
        by_tokens = [i for i, r in enumerate(requests) if r[0] not in self.head_domains]
        rows = generators or [None] * len(requests)
        answers: dict[int, Decoded] = {}
        if by_tokens:
            generated = self.generate([requests[i] for i in by_tokens], generators=[rows[i] for i in by_tokens])
            answers.update({i: self._decode(requests[i][0], ids) for i, ids in zip(by_tokens, generated)})
        if by_head:
            answers.update(zip(by_head, self.head_actions([requests[i] for i in by_head], [rows[i] for i in by_head])))
        return [answers[i] for i in range(len(requests))]

    def _inputs(self, requests: Sequence[tuple]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The batch's chat inputs on the model's device, and its states (``None`` for a model without
        a state input; set as the model's state input)."""
        from ..models.chat import chat_inputs, per_domain

        for domain, *_ in requests:
            if domain not in self.settings.domains:
                raise AgentError(f"the model has no domain {domain!r}; its domains: {self.settings.domains}")
        prompts = [(*self.prompt(domain, instruction, previous), images)
                   for domain, instruction, images, previous, *_ in requests]
        sizes = [per_domain(self.settings.image_size, r[0]) for r in requests]
        inputs = chat_inputs(self.processor, prompts, sizes)
        device = next(self.model.parameters()).device
        state = self._state_batch(requests)
        if state is not None:
            from ..models.adapters import set_state

            set_state(self.model, state.to(device))
        return {k: v.to(device) for k, v in inputs.items()}, state

    def _routed(self, domains: Sequence[str]) -> Any:
        """The context that routes each row to its domain's experts (a no-op for a model without them)."""
        from contextlib import nullcontext

        from ..models.heterogeneity import heterogeneity_config, use_domains

        routed = heterogeneity_config(self.model) is not None and hasattr(self.model, "omniactor_context")
        return use_domains(self.model, list(domains)) if routed else nullcontext()

    def head_actions(self, requests: Sequence[tuple],
                     generators: Sequence[torch.Generator | None] | None = None) -> list[Decoded]:
        """The action heads' actions (one forward pass over the prompts, no generation)."""
        from ..models.adapters import predict_action

        inputs, state = self._inputs(requests)
        domains = [r[0] for r in requests]
        with torch.inference_mode(), self._routed(domains):
            out = self.model(**inputs, output_hidden_states=True)
        final = out.hidden_states[-1][:, -1]  # left padding: the last position is each prompt's end
        answers: list[Decoded] = []
        for row, domain in enumerate(domains):
            with torch.inference_mode():
                output = predict_action(self.model, domain, final[row:row + 1],
                                        state[row:row + 1] if state is not None else None)[0].float().cpu()
            if domain in self.settings.classification_heads:
                generator = generators[row] if generators else None
                action: Action = self.action_tokenizers[domain].space.action(self._choose(output, generator))
            else:
                action = self._motion(domain, output)
            self.stats["actions"] += 1
            answers.append(Decoded(action, format_action(action), True))
        return answers

    def _motion(self, domain: str, unit: torch.Tensor) -> ContinuousAction:
        """A regression head's ``[-1, 1]`` output as the domain's motion."""
        from ..actions.tokenizers.continuous_common import from_unit

        tokenizer = self.action_tokenizers[domain]
        values = from_unit(unit.numpy(), tokenizer.normalizer)
        return ContinuousAction(tuple(float(v) for v in values), tuple(tokenizer.names))

    def _choose(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """A classification head's choice: the highest logit, or a sample at the agent's temperature
        among its ``top_k`` best (from ``generator``, else the agent's)."""
        if not self.do_sample:
            return int(logits.argmax())
        generator = generator if generator is not None else self.generator
        return sample_top_k(logits, self.temperature, self.top_k, generator)

    def generate(self, requests: Sequence[tuple],
                 constrained: bool | None = None, max_new_tokens: int | None = None,
                 min_new_tokens: int | None = None,
                 generators: Sequence[torch.Generator | None] | None = None) -> list[list[int]]:
        """The generated token ids of each request (one batched ``generate``); ``constrained``
        defaults to the agent's setting, ``max_new_tokens`` to the longest answer the domains allow.
        Sampling draws each row's tokens from its own generator (``generators``, None: the agent's)
        in ``RowSampler``, so a row's answer does not depend on the rows beside it."""
        from transformers import LogitsProcessorList

        constrained = self.constrained if constrained is None else constrained
        inputs, _ = self._inputs(requests)
        domains = [r[0] for r in requests]
        prompt_length = inputs["input_ids"].shape[1]
        grammars = [self.grammar(d) for d in domains]
        processors = LogitsProcessorList()
        constraint = None
        if constrained:
            constraint = ActionConstraint(grammars, prompt_length, top_k=self.top_k if self.do_sample else 1)
            processors.append(constraint)
        if self.do_sample:  # the chosen token is the only one left: generate() then takes it greedily
            rows = generators or [None] * len(requests)
            processors.append(RowSampler([g if g is not None else self.generator for g in rows],
                                         self.temperature, self.top_k))
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens or max(g.max_tokens for g in grammars), "do_sample": False,
            "eos_token_id": self.end_id, "pad_token_id": self.tokenizer.pad_token_id, "top_k": None, "top_p": None,
            "temperature": None}
        if min_new_tokens and not constrained:  # the grammar alone decides when a constrained answer ends
            kwargs["min_new_tokens"] = min_new_tokens
        with torch.inference_mode(), self._routed(domains):
            out = self.model.generate(**inputs, logits_processor=processors, **kwargs)
        if constraint is not None and constraint.dead_ends:
            self.stats["dead_ends"] += constraint.dead_ends
        return [row[prompt_length:].tolist() for row in out]

    def _state_batch(self, requests: Sequence[tuple]) -> torch.Tensor | None:
        """``(B, S)`` state inputs: each row's state in its domain's place (``StateLayout``), zeros elsewhere."""
        from ..models.chat import StateLayout

        widths = self.settings.state_widths
        if not widths:
            return None
        if 0 in widths.values():  # an agent.json from before widths per domain
            if len(widths) > 1:
                raise AgentError(f"state domains {list(widths)} without their widths; re-train the model")
            widths = {d: int(self.model.omniactor_adapters["state"].state_dim) for d in widths}
        layout = StateLayout(widths)
        rows: list[list[float]] = []
        for request in requests:
            domain = request[0]
            state = request[4] if len(request) > 4 and domain in layout else None
            if domain in layout and state is None:
                raise AgentError(f"domain {domain!r} takes a state input; the observation has no state")
            try:
                rows.append(layout.place(domain, state) if domain in layout else [0.0] * layout.width)
            except ValueError as err:
                raise AgentError(str(err)) from None
        return torch.tensor(rows, dtype=torch.float32)

    def _decode(self, domain: str, ids: list[int]) -> Decoded:
        if self.end_id in ids:
            ids = ids[: ids.index(self.end_id)]
        pad = self.tokenizer.pad_token_id
        while ids and ids[-1] == pad:
            ids.pop()
        tokenizer = self.action_tokenizers[domain]
        self.stats["actions"] += 1
        if isinstance(tokenizer, CodeTokenizer):
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            try:
                result = tokenizer.decode_ids(ids)
            except (ActionDecodeError, ValueError) as err:
                result = ActionDecodeError(ids, str(err)) if not isinstance(err, ActionDecodeError) else err
        else:
            text = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            result = tokenizer.try_decode(text)
        if isinstance(result, ActionDecodeError):
            self.stats["invalid"] += 1
            return Decoded(self.fallback(domain), text, False, str(result))
        return Decoded(result, text, True)

    def fallback(self, domain: str) -> Action:
        """The no-op an undecodable answer becomes (only possible without constraints)."""
        tokenizer = self.action_tokenizers[domain]
        space = getattr(tokenizer, "space", None)
        if space is not None and hasattr(space, "names") and not hasattr(space, "low"):
            return DiscreteAction(space.names[0])
        names = getattr(tokenizer, "names", None) or next(iter(getattr(tokenizer, "embodiments", {}).values()), None)
        if names:
            return ContinuousAction(tuple(0.0 for _ in names), tuple(names))
        return Wait()

    def grammar(self, domain: str) -> CodeGrammar | TextGrammar:
        """The constraint of ``domain``'s answers (built once)."""
        if domain not in self._grammars:
            tokenizer = self.action_tokenizers[domain]
            if isinstance(tokenizer, CodeTokenizer):
                self._grammars[domain] = CodeGrammar.for_tokenizer(tokenizer, self.end_id, self.vocab_size)
            else:
                if self._table is None:
                    self._table = TokenTable(self.tokenizer, self.vocab_size)
                self._grammars[domain] = TextGrammar(tokenizer.output_pattern(self.max_text_chars), self._table,
                                                     self.end_id, tokenizer.max_output_chars(self.max_text_chars))
        return self._grammars[domain]


def sample_top_k(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> int:
    """An index drawn from ``softmax(logits / temperature)`` over the ``top_k`` best finite logits."""
    best = logits.float().cpu().topk(min(top_k, logits.numel()))
    finite = torch.isfinite(best.values)
    values, indices = (best.values[finite], best.indices[finite]) if finite.any() else (best.values, best.indices)
    weights = torch.softmax(values / max(temperature, 1e-6), dim=0)
    return int(indices[torch.multinomial(weights, 1, generator=generator)])


class RowSampler:
    """Hugging Face logits processor (last in the list): samples each row's next token with
    ``sample_top_k`` from that row's generator and leaves it the only finite score, so greedy
    ``generate`` takes it. Each row draws from its own stream, whatever else is in the batch."""

    def __init__(self, generators: Sequence[torch.Generator | None], temperature: float, top_k: int):
        self.generators, self.temperature, self.top_k = list(generators), temperature, top_k

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(scores, float("-inf"))
        for row, generator in enumerate(self.generators):
            out[row, sample_top_k(scores[row], self.temperature, self.top_k, generator)] = 0.0
        return out
