"""The chat prompt a model is trained on and acts from: one definition for both.

A turn is the system prompt, the image(s) and the human text (task, previous actions,
question; ``data.prompts.human_turn``), rendered by the family's chat template with the
assistant's turn opened. Training (``training.data.SampleEncoder``) appends the answer;
the ``Agent`` lets the model write it. Keeping both here means a trained model is always
asked exactly what it was taught.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: the placeholder whose input embedding the state projection replaces (models.adapters)
STATE_TOKEN = "<state>"


def with_state_marker(text: str) -> str:
    """The human text with a ``State: <state>`` line before its last line (the question)."""
    head, _, question = text.rpartition("\n")
    return f"{head}\nState: {STATE_TOKEN}\n{question}" if head else f"State: {STATE_TOKEN}\n{question}"


class StateLayout:
    """Where each domain's state sits in the one state input: the domains' vectors side by side
    (``{"embodied": 39, "discrete": 148}`` -> embodied in 0..38, discrete in 39..186), zeros in
    the other domains' places. One projection serves state vectors of different widths."""

    def __init__(self, widths: dict[str, int] | None = None):
        self.widths = dict(widths or {})
        self.offsets: dict[str, int] = {}
        offset = 0
        for domain, width in self.widths.items():
            self.offsets[domain] = offset
            offset += int(width)
        self.width = offset

    def __contains__(self, domain: str) -> bool:
        return domain in self.widths

    def span(self, domain: str) -> tuple[int, int]:
        return self.offsets[domain], self.offsets[domain] + self.widths[domain]

    def place(self, domain: str, state: Sequence[float] | None) -> list[float]:
        """The full-width input for one sample of ``domain`` (all zeros for ``None``)."""
        values = [0.0] * self.width
        if state is not None:
            if len(state) != self.widths[domain]:
                raise ValueError(f"domain {domain!r} takes a state of {self.widths[domain]} numbers; "
                                 f"got {len(state)}")
            start, end = self.span(domain)
            values[start:end] = [float(v) for v in state]
        return values


def add_adapters(model: Any, tokenizer: Any, state_dim: int = 0, mean: Any = None, std: Any = None,
                 regression_dims: dict[str, int] | None = None, regression_state: bool = False,
                 pointer: dict[str, Any] | None = None, copy: bool | list[str] = False,
                 classification_sizes: dict[str, int] | None = None) -> int | None:
    """Give ``model`` its action adapters (``models.adapters``) in one call:

    - with ``state_dim``: a state input, the ``<state>`` token in ``tokenizer`` and a projection of
      ``state_dim`` numbers onto its embedding, standardised with the data's ``mean`` / ``std``;
    - with ``regression_dims`` (``{domain: D}``): a regression head per domain, and with
      ``classification_sizes`` (``{domain: N}``) a classification head, each reading the
      standardised state beside the final hidden state when ``regression_state``;
    - with ``pointer`` (``models.pointer.PointerConfig`` fields): the image pointer;
    - with ``copy``: copying from the prompt (``models.copy``), for every domain (``True``) or for
      the rows of the domains listed.

    Returns the ``<state>`` token's id (``None`` without a state input)."""
    from tokenizers import AddedToken

    from .adapters import AdapterConfig, attach_adapters
    from .vocabulary import resize_vocabulary

    token_id = None
    if state_dim:
        if STATE_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_tokens([AddedToken(STATE_TOKEN, normalized=False, special=True)])
        resize_vocabulary(model, max(len(tokenizer), model.get_input_embeddings().weight.shape[0]))
        token_id = int(tokenizer.convert_tokens_to_ids(STATE_TOKEN))
    attach_adapters(model, AdapterConfig(regression_dims=dict(regression_dims) if regression_dims else None,
                                         classification_sizes=dict(classification_sizes) if classification_sizes else None,
                                         state_dim=int(state_dim), state_token_id=token_id,
                                         regression_state=bool(regression_state and state_dim),
                                         pointer=pointer, copy=copy_settings(model, tokenizer, copy) if copy else None))
    if state_dim and mean is not None and std is not None:
        model.omniactor_adapters["state"].set_statistics(mean, std)
    return token_id


def copy_settings(model: Any, tokenizer: Any, domains: bool | list[str] = True) -> dict[str, Any]:
    """What ``models.copy`` needs: the turn-opening token, the tokens never copied, and the domains
    whose rows copy (a list; ``True``: every domain)."""
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    if start is None or start == tokenizer.unk_token_id:
        raise ValueError("copying from the prompt needs a chat template with <|im_start|> turns (Qwen families)")
    excluded = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        if getattr(model.config, key, None) is not None:
            excluded.add(int(getattr(model.config, key)))
    settings = {"turn_start_id": int(start), "excluded_ids": sorted(int(i) for i in excluded)}
    if isinstance(domains, list):
        settings["domains"] = list(domains)
    return settings


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that ends the assistant's answer: ``<|im_end|>`` where the family has it, else EOS."""
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if end is None or end == tokenizer.unk_token_id:
        end = tokenizer.eos_token_id
    return end


def chat_text(processor: Any, system: str, text: str, num_images: int) -> str:
    """The rendered prompt, ending where the assistant's answer starts."""
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": text}]
    # an empty system turn rather than none: chat templates (Qwen's) insert a default one
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]},
                {"role": "user", "content": content}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def resize_images(images: Sequence[Any], image_size: int | None) -> list[Any]:
    """PIL images (or ``(H, W, 3)`` uint8 arrays) as RGB PIL images, squared to ``image_size`` if set."""
    from PIL import Image

    out = []
    for image in images:
        if not isinstance(image, Image.Image):
            image = Image.fromarray(image)
        image = image.convert("RGB")
        if image_size:
            image = image.resize((image_size, image_size))
        out.append(image)
    return out


def per_domain(setting: Any, domain: str) -> Any:
    """A prompt setting's value for ``domain``: one value for all domains, or a mapping per domain
    (a domain left out gets ``None``). Image size: ``{"gui": 224, "embodied": 112}`` (None: images
    as stored); history: ``{"gui": 2, "embodied": 0}`` (None: no previous actions)."""
    return setting.get(domain) if isinstance(setting, dict) else setting


def chat_inputs(processor: Any, prompts: Sequence[tuple[str, str, Sequence[Any]]],
                image_size: int | None | Sequence[int | None], padding_side: str = "left") -> Any:
    """Model inputs for a batch of ``(system, text, images)`` turns (left-padded for generation);
    ``image_size`` is one size for all turns or one per turn."""
    texts, images = [], []
    sizes = list(image_size) if isinstance(image_size, (list, tuple)) else [image_size] * len(prompts)
    for (system, text, turn_images), size in zip(prompts, sizes):
        turn_images = resize_images(turn_images, size)
        texts.append(chat_text(processor, system, text, len(turn_images)))
        images.extend(turn_images)
    tokenizer = getattr(processor, "tokenizer", processor)
    previous = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        return processor(text=texts, images=images or None, return_tensors="pt", padding=len(texts) > 1)
    finally:
        tokenizer.padding_side = previous


def row_inputs(inputs: dict[str, torch.Tensor], row: int, images_per_row: Sequence[int]) -> dict[str, torch.Tensor]:
    """Row ``row`` of a left-padded batch of chat inputs, without its padding, on the CPU: its token
    ids and mask, and its images' tensors (Qwen's patches are cut by ``image_grid_thw``)."""
    import torch

    batch = inputs["input_ids"].shape[0]
    keep = inputs["attention_mask"][row].bool()
    first_image = sum(images_per_row[:row])
    mine = slice(first_image, first_image + images_per_row[row])
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if key == "pixel_values" and "image_grid_thw" in inputs:
            sizes = inputs["image_grid_thw"].prod(dim=1).tolist()
            start = int(sum(sizes[:mine.start]))
            out[key] = value[start:start + int(sum(sizes[mine]))]
        elif key in ("image_grid_thw", "image_sizes") or (key == "pixel_values" and value.shape[0] != batch):
            out[key] = value[mine]
        elif value.dim() >= 2 and value.shape[0] == batch and value.shape[1] == keep.shape[0]:
            out[key] = value[row:row + 1, keep]
        elif value.shape[0] == batch:
            out[key] = value[row:row + 1]
        else:
            out[key] = value
    return {k: v.detach().cpu() for k, v in out.items()}


def batch_rows(rows: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """``row_inputs`` undone: unpadded rows back into one left-padded batch (the token-aligned
    tensors padded on the left, ``pad_id`` for the ids and 0 elsewhere; the image tensors
    concatenated in row order), as ``chat_inputs`` would have made it."""
    import torch

    length = max(int(row["input_ids"].shape[1]) for row in rows)
    out: dict[str, torch.Tensor] = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        aligned = values[0].dim() >= 2 and values[0].shape[0] == 1 and \
            all(v.shape[1] == r["input_ids"].shape[1] for v, r in zip(values, rows))
        if key in ("pixel_values", "image_grid_thw", "image_sizes") or not aligned:
            out[key] = torch.cat(values, dim=0)
            continue
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.cat([torch.cat([torch.full((1, length - v.shape[1], *v.shape[2:]), fill, dtype=v.dtype), v],
                                        dim=1) for v in values], dim=0)
    return out


def extend_with_answer(inputs: dict[str, torch.Tensor], answer: torch.Tensor) -> dict[str, torch.Tensor]:
    """One row's prompt inputs with its answer ids ``(1, T)`` appended (mask 1, token type 0)."""
    import torch

    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], answer], dim=1)
    out["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(answer)], dim=1)
    for key in ("mm_token_type_ids", "token_type_ids"):
        if key in inputs:
            out[key] = torch.cat([inputs[key], torch.zeros_like(answer)], dim=1)
    return out
