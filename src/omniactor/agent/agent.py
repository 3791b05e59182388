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
returned action parses and lies in range whatever the weights. Each domain acts through its
action adapter (``action_adapters``, named by its block's ``output``): the rows whose adapter
writes an answer are generated together, the rows of head domains (regression,
classification) take one forward pass, and each head's distribution gives its mode, or a
draw when the agent samples (``use_heads=False`` writes the answer tokens instead). With
``record=True`` each answer keeps what it saw and its log-probability (``Decoded.record``),
and ``score`` recomputes its distribution from those tokens, for online RL. A sampled answer of an episode
started with a ``seed`` draws from that episode's own generator, seeded by the agent's seed,
the episode's seed and the step (``step_generator``): an episode acts the same alone or in
any batch, in any order. Model output never ends
an episode: an answer that still does not decode (possible only unconstrained) becomes
the domain's no-op (``wait()``, a zero motion, the first discrete action) and is counted
in ``agent.stats``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..action_adapters import ActionAdapter, ActRecord, Decoded, adapter_class, build_adapter
from ..action_adapters.distributions import ActionDistribution, sample_top_k
from ..action_adapters.tokens import TokenAnswer
from ..actions import Action, format_action
from ..actions.tokenizers.base import ActionTokenizer
from ..errors import OmniactorError
from ..models.chat import end_of_turn_id, extend_with_answer, row_inputs
from .constraints import ActionConstraint, CodeGrammar, RowState, TextGrammar, TokenTable
from .inputs import ObservationError, observation_inputs
from .settings import AgentSettings, load_settings

TOKENIZERS_DIR = "action_tokenizers"


class AgentError(OmniactorError, RuntimeError):
    """The agent cannot act as asked (unknown domain, a checkpoint without its parts, ...)."""


@dataclass
class Episode:
    """One episode's task and the actions taken so far (the history the prompt shows)."""

    instruction: str
    domain: str
    actions: list[Action] = field(default_factory=list)
    seed: int | str | None = None  # the episode's own sampling stream (``Agent.step_generator``)


class Agent:
    """See the module docstring. ``do_sample``/``temperature``/``top_k`` choose the decoding;
    ``record=True`` keeps, with each answer, what it saw and its log-probability (``Decoded.record``,
    ``score``) for online RL."""

    def __init__(self, model: Any, processor: Any, action_tokenizers: dict[str, ActionTokenizer],
                 settings: AgentSettings, constrained: bool = True, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int = 50, seed: int | None = None,
                 max_text_chars: int | None = None, use_heads: bool = True, record: bool = False):
        missing = [d for d in settings.domains if d not in action_tokenizers]
        if missing:
            raise AgentError(f"no action tokenizer for domain(s) {missing}")
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.action_tokenizers = action_tokenizers
        self.settings = settings
        self.constrained = constrained
        self.record = record
        self.set_decoding(do_sample, temperature, top_k, seed)
        self.max_text_chars = max_text_chars  # typed text / app names (default: grammar.MAX_TEXT_CHARS)
        self.adapters: dict[str, ActionAdapter] = {}
        for domain, spec in settings.domains.items():
            output = spec.output if use_heads or adapter_class(spec.output).writes_answer else "tokens"
            self.adapters[domain] = build_adapter(output, domain, action_tokenizers[domain])
            self._restrict(domain, spec.actions)
        self.end_id = end_of_turn_id(self.tokenizer)
        # logits have a row per embedding row (the head may be per-domain, the embeddings are one)
        self.vocab_size = max(int(model.get_input_embeddings().weight.shape[0]), len(self.tokenizer))
        self._table: TokenTable | None = None
        self.stats: Counter[str] = Counter()
        self.episode: Episode | None = None

    def restrict_actions(self, domain: str, actions: Sequence[str] | None) -> None:
        """From here on the ``domain``'s policy acts only by ``actions`` (a classification head's
        discrete actions; ``None``: all of them). It is part of the agent's settings, so an agent
        saved after RL keeps it (``agent.json``)."""
        self._check_domain(domain)
        actions = list(actions) if actions is not None else None
        self._restrict(domain, actions)
        self.settings.domains[domain] = replace(self.settings.domains[domain], actions=actions)

    def _restrict(self, domain: str, actions: list[str] | None) -> None:
        try:
            self.adapters[domain].restrict(actions)
        except ValueError as e:
            raise AgentError(f"actions: {e}") from None

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
        model = load_pretrained(directory, dtype=dtype, device=device)
        settings = load_settings(directory, model, action_tokenizers)
        from transformers import AutoProcessor

        allow_processors_without_torchvision()
        processor = AutoProcessor.from_pretrained(str(directory), local_files_only=True)
        return cls(model, processor, action_tokenizers, settings, **options)

    # -- episodes --------------------------------------------------------------------------
    def start(self, instruction: str, domain: str, seed: int | str | None = None) -> Episode:
        """A new episode (for ``act_batch``); ``seed`` (e.g. the environment's task and seed) gives
        its sampled answers a stream of their own (``step_generator``)."""
        self._check_domain(domain)
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
        """The next action of the episode started by ``reset``; ``observation``: an ``Observation``, a PIL
        image, an ``(H, W, 3)`` uint8 array or ``{"image" | "images": ..., "state": [...]}`` (``agent.inputs``)."""
        if self.episode is None:
            raise AgentError("call reset(instruction, domain) before act()")
        return self.act_batch([self.episode], [observation])[0]

    def act_batch(self, episodes: Sequence[Episode], observations: Sequence[Any],
                  details: bool = False) -> list[Action] | list[Decoded]:
        """One action per episode from its observation (one batched generation); histories grow.
        ``details=True`` returns the ``Decoded`` answers (action, raw text, validity) instead."""
        if len(episodes) != len(observations):
            raise AgentError(f"{len(episodes)} episodes but {len(observations)} observations")
        requests = []
        for index, (episode, observation) in enumerate(zip(episodes, observations)):
            try:
                images, state = observation_inputs(observation, f"observation {index}")
            except ObservationError as err:
                raise AgentError(str(err)) from None
            requests.append((episode.domain, episode.instruction, images, episode.actions, state))
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
    def _check_domain(self, domain: str) -> None:
        if domain not in self.settings.domains:
            raise AgentError(f"the model has no domain {domain!r}; its domains: {self.settings.names}")

    def prompt(self, domain: str, instruction: str, previous: Sequence[Action]) -> tuple[str, str]:
        """``(system, human text)`` as in training."""
        from ..data.prompts import human_turn
        from ..models.chat import with_state_marker

        spec = self.settings.domains[domain]
        shown = list(previous)[-spec.history:] if spec.history else []
        text = human_turn(instruction, 0, [format_action(a) for a in shown])
        if spec.state_width is not None:
            text = with_state_marker(text)
        return spec.system_prompt, text

    def decide(self, requests: Sequence[tuple],
               generators: Sequence[torch.Generator | None] | None = None) -> list[Decoded]:
        """One answer per ``(domain, instruction, images, previous actions[, state])``: the rows whose
        adapter writes an answer in one batched generation per domain, the others by their heads in
        one forward pass. ``generators``: each request's sampling generator (None: the agent's).

        Per domain, because a generation runs until its longest answer ends and pads every prompt
        to the longest: a domain's rows share their prompt's shape and their answers' length, and
        a mixed batch made each row pay for the longest of every domain (16 mixed rows of the
        serving benchmark: 1.7x faster in three generations than in one)."""
        for request in requests:
            self._check_domain(request[0])
        answered = [i for i, r in enumerate(requests) if self.adapters[r[0]].writes_answer]
        by_head = [i for i, r in enumerate(requests) if not self.adapters[r[0]].writes_answer]
        rows = generators or [None] * len(requests)
        answers: dict[int, Decoded] = {}
        for domain in dict.fromkeys(requests[i][0] for i in answered):
            group = [i for i in answered if requests[i][0] == domain]
            answers.update(zip(group, self.answer([requests[i] for i in group], [rows[i] for i in group])))
        if by_head:
            answers.update(zip(by_head, self.head_actions([requests[i] for i in by_head], [rows[i] for i in by_head])))
        return [answers[i] for i in range(len(requests))]

    def _inputs(self, requests: Sequence[tuple]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The batch's chat inputs on the model's device, and its states (``None`` for a model without
        a state input; set as the model's state input)."""
        from ..models.chat import chat_inputs

        for domain, *_ in requests:
            self._check_domain(domain)
        prompts = [(*self.prompt(domain, instruction, previous), images)
                   for domain, instruction, images, previous, *_ in requests]
        sizes = [self.settings.domains[r[0]].image_size for r in requests]
        inputs = chat_inputs(self.processor, prompts, sizes)
        device = next(self.model.parameters()).device
        state = self._state_batch(requests)
        if state is not None:
            from ..models.adapters import set_state

            set_state(self.model, state.to(device))
        return {k: v.to(device) for k, v in inputs.items()}, state

    def _routed(self, domains: Sequence[str], model: Any = None) -> Any:
        """The context that routes each row of ``model`` (default: the agent's) to its domain's experts
        (a no-op for a model without them)."""
        from contextlib import nullcontext

        from ..models.heterogeneity import heterogeneity_config, use_domains

        model = self.model if model is None else model
        routed = heterogeneity_config(model) is not None and hasattr(model, "omniactor_context")
        return use_domains(model, list(domains)) if routed else nullcontext()

    def head_actions(self, requests: Sequence[tuple],
                     generators: Sequence[torch.Generator | None] | None = None) -> list[Decoded]:
        """The heads' actions: one forward pass over the prompts, then each row's distribution
        (``action_adapters``): its mode, or a draw when the agent samples."""
        inputs, state = self._inputs(requests)
        domains = [r[0] for r in requests]
        with torch.inference_mode(), self._routed(domains):
            out = self.model(**inputs, output_hidden_states=True)
        final = out.hidden_states[-1][:, -1]  # left padding: the last position is each prompt's end
        answers: list[Decoded] = []
        images = [len(r[2]) for r in requests]
        for row, domain in enumerate(domains):
            adapter = self.adapters[domain]
            row_state = state[row:row + 1] if state is not None else None
            with torch.inference_mode():
                distribution = adapter.distribution(self.model, final[row:row + 1], row_state, self.temperature)
                generator = generators[row] if generators else None
                value = distribution.sample(generator if generator is not None else self.generator) \
                    if self.do_sample else distribution.mode()
                log_prob = float(distribution.log_prob(value)[0]) if self.record else 0.0
            action = adapter.to_action(value[0])
            record = None
            if self.record:
                record = ActRecord(domain, row_inputs(inputs, row, images), row_state, value=value[0].cpu(),
                                   log_prob=log_prob)
            self.stats["actions"] += 1
            answers.append(Decoded(action, format_action(action), True, record=record))
        return answers

    def answer(self, requests: Sequence[tuple],
               generators: Sequence[torch.Generator | None] | None = None) -> list[Decoded]:
        """The written answers of ``requests`` (one batched generation), decoded by their adapters."""
        inputs, state, rows, generated = self._generate(requests, generators=generators, record=self.record)
        answers = []
        images = [len(r[2]) for r in requests]
        for index, (request, row) in enumerate(zip(requests, rows)):
            self.stats["actions"] += 1
            decoded = self.adapters[request[0]].decode(generated[index], self.end_id, self.tokenizer)
            if not decoded.valid:
                self.stats["invalid"] += 1
            if self.record:
                decoded.record = ActRecord(request[0], row_inputs(inputs, index, images),
                                           state[index:index + 1] if state is not None else None,
                                           ids=list(row.ids), step_log_probs=list(row.log_probs),
                                           log_prob=float(sum(row.log_probs)))
            answers.append(decoded)
        return answers

    def generate(self, requests: Sequence[tuple],
                 constrained: bool | None = None, max_new_tokens: int | None = None,
                 min_new_tokens: int | None = None,
                 generators: Sequence[torch.Generator | None] | None = None) -> list[list[int]]:
        """The generated token ids of each request (one batched ``generate``); ``constrained``
        defaults to the agent's setting, ``max_new_tokens`` to the longest answer the domains allow.
        Sampling draws each row's tokens from its own generator (``generators``, None: the agent's)
        in ``RowSampler``, so a row's answer does not depend on the rows beside it."""
        return self._generate(requests, constrained, max_new_tokens, min_new_tokens, generators)[3]

    def _generate(self, requests: Sequence[tuple], constrained: bool | None = None,
                  max_new_tokens: int | None = None, min_new_tokens: int | None = None,
                  generators: Sequence[torch.Generator | None] | None = None,
                  record: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, list[RowState],
                                                 list[list[int]]]:
        """``generate``: the inputs, the states, each row's ``RowState`` (its ids up to the end and,
        with ``record``, each one's log-probability under the grammar's whole mask) and each row's
        whole generated part (padding included, as ``generate`` gave it)."""
        from transformers import LogitsProcessorList

        constrained = self.constrained if constrained is None else constrained
        inputs, state = self._inputs(requests)
        domains = [r[0] for r in requests]
        prompt_length = inputs["input_ids"].shape[1]
        grammars = [self.grammar(d) for d in domains]
        processors = LogitsProcessorList()
        constraint = None
        if constrained:
            constraint = ActionConstraint(grammars, prompt_length, top_k=self.top_k if self.do_sample else 1,
                                          record=record)
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
        generated = [row[prompt_length:].tolist() for row in out]
        if constraint is None:
            return inputs, state, [RowState(None, ids=ids) for ids in generated], generated
        if constraint.dead_ends:
            self.stats["dead_ends"] += constraint.dead_ends
        return inputs, state, constraint.finish(out), generated

    def state_widths(self) -> dict[str, int]:
        """``{domain: width}`` of the domains whose prompt carries the state input (an agent.json from
        before widths per domain: its one state domain is as wide as the model's input)."""
        widths = self.settings.state_widths
        if 0 in widths.values():
            if len(widths) > 1:
                raise AgentError(f"state domains {list(widths)} without their widths; re-train the model")
            widths = {d: int(self.model.omniactor_adapters["state"].state_dim) for d in widths}
        return widths

    def _state_batch(self, requests: Sequence[tuple]) -> torch.Tensor | None:
        """``(B, S)`` state inputs: each row's state in its domain's place (``StateLayout``), zeros elsewhere."""
        from ..models.chat import StateLayout

        widths = self.state_widths()
        if not widths:
            return None
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

    def fallback(self, domain: str) -> Action:
        """The no-op an undecodable answer of ``domain`` becomes (only possible without constraints)."""
        return TokenAnswer(domain, self.action_tokenizers[domain]).fallback()

    def grammar(self, domain: str) -> CodeGrammar | TextGrammar:
        """The constraint of ``domain``'s answers (built once, by its adapter)."""
        adapter = self.adapters[domain]
        if not adapter.writes_answer:  # a head domain asked to write (e.g. generate() in a benchmark)
            adapter = self.adapters.setdefault(f"{domain}/tokens", TokenAnswer(domain, self.action_tokenizers[domain]))
        return adapter.grammar(self.end_id, self.vocab_size, self.token_table, self.max_text_chars)

    def token_table(self) -> TokenTable:
        """The text of every token (built once, shared by the text grammars)."""
        if self._table is None:
            self._table = TokenTable(self.tokenizer, self.vocab_size)
        return self._table

    # -- scoring (online RL) -----------------------------------------------------------------
    def score(self, records: Sequence[ActRecord], grad: bool = False) -> list[ActionDistribution]:
        """Each recorded act's distribution, recomputed from its recorded inputs and answer (no chat
        template, no processor): ``dist.log_prob(value)`` of an answer's ids, or of a head's value,
        equals the act's ``record.log_prob`` (up to float rounding); ``grad=True`` keeps the graph."""
        from contextlib import nullcontext

        out: list[ActionDistribution] = []
        for record in records:
            adapter = self.adapters[record.domain]
            device = next(self.model.parameters()).device
            inputs = {k: v.to(device) for k, v in record.inputs.items()}
            if record.state is not None:
                from ..models.adapters import set_state

                set_state(self.model, record.state.to(device))
            prompt_length = inputs["input_ids"].shape[1]
            context = nullcontext() if grad else torch.inference_mode()
            with context, self._routed([record.domain]):
                if adapter.writes_answer:
                    answer = torch.tensor([record.ids], dtype=torch.long, device=device)
                    inputs = extend_with_answer(inputs, answer)
                    logits = self.model(**inputs).logits[:, prompt_length - 1: prompt_length - 1 + answer.shape[1]]
                    out.append(adapter.distribution(logits.float(), [record.ids], self.grammar(record.domain)))
                else:
                    hidden = self.model(**inputs, output_hidden_states=True).hidden_states[-1][:, -1]
                    out.append(adapter.distribution(self.model, hidden, record.state, self.temperature))
        return out


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
