"""Named model presets: tiny random-initialised VLMs for CPU work and the real architectures.

Every preset lives in one registry (``PRESETS``) and names a *family* (``FAMILIES``): the
Hugging Face model class and where its parts live, which the layer-heterogeneity
conversion reads (``FamilySpec.layers_path`` etc.). A tiny preset and a 7B checkpoint go
through the same code: the family's ``*ForConditionalGeneration`` class built from its
config (``build_model``) or loaded from a local checkpoint directory (``load_model``).

    model, processor = build_model("tiny")                       # 8 layers, hidden 128, CPU
    model, processor = build_model("qwen2-vl-7b", random_init=True, device="cuda", dtype="bfloat16")
    model, processor = load_model("/ckpt/Qwen2-VL-7B-Instruct")  # local files only

Importing this module is light; ``torch`` and ``transformers`` are imported by the functions.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import OmniactorError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilySpec:
    """Facts about one VLM family's ``transformers`` classes (paths are ``get_submodule`` paths)."""

    name: str
    """Family name used by presets and the tokenizer builders, e.g. ``"qwen2-vl"``."""
    model_type: str
    """``config.model_type`` of its checkpoints (how a loaded config is mapped to a family)."""
    model_class: str
    """``transformers`` class built or loaded, e.g. ``Qwen2VLForConditionalGeneration``."""
    config_class: str
    """``transformers`` config class of the whole model."""
    layers_path: str
    """The decoder layers (``nn.ModuleList``), from the top model."""
    embed_path: str
    """The input token embedding (``nn.Embedding``)."""
    final_norm_path: str
    """The norm after the last decoder layer (RMSNorm)."""
    head_path: str
    """The output head (``nn.Linear`` to the vocabulary)."""
    vision_path: str
    """The vision encoder (its projector to the text width included for Qwen)."""
    projector_path: str
    """The module mapping vision features into the text embedding space."""
    text_config_attr: str
    """Attribute of the top config holding the language model's config."""
    token_id_fields: tuple[tuple[str, str], ...]
    """``(config attribute, token)`` pairs: multimodal token ids the model reads from its config."""

    def text_config(self, config: PretrainedConfig) -> PretrainedConfig:
        """The language model's config inside a full model config."""
        return getattr(config, self.text_config_attr)


_QWEN_VL_TOKEN_FIELDS = (
    ("image_token_id", "<|image_pad|>"),
    ("video_token_id", "<|video_pad|>"),
    ("vision_start_token_id", "<|vision_start|>"),
    ("vision_end_token_id", "<|vision_end|>"),
)

FAMILIES: dict[str, FamilySpec] = {
    "qwen2-vl": FamilySpec(
        name="qwen2-vl",
        model_type="qwen2_vl",
        model_class="Qwen2VLForConditionalGeneration",
        config_class="Qwen2VLConfig",
        layers_path="model.language_model.layers",
        embed_path="model.language_model.embed_tokens",
        final_norm_path="model.language_model.norm",
        head_path="lm_head",
        vision_path="model.visual",
        projector_path="model.visual.merger",
        text_config_attr="text_config",
        token_id_fields=_QWEN_VL_TOKEN_FIELDS,
    ),
    "qwen2.5-vl": FamilySpec(
        name="qwen2.5-vl",
        model_type="qwen2_5_vl",
        model_class="Qwen2_5_VLForConditionalGeneration",
        config_class="Qwen2_5_VLConfig",
        layers_path="model.language_model.layers",
        embed_path="model.language_model.embed_tokens",
        final_norm_path="model.language_model.norm",
        head_path="lm_head",
        vision_path="model.visual",
        projector_path="model.visual.merger",
        text_config_attr="text_config",
        token_id_fields=_QWEN_VL_TOKEN_FIELDS,
    ),
    "llava-onevision": FamilySpec(
        name="llava-onevision",
        model_type="llava_onevision",
        model_class="LlavaOnevisionForConditionalGeneration",
        config_class="LlavaOnevisionConfig",
        layers_path="model.language_model.layers",
        embed_path="model.language_model.embed_tokens",
        final_norm_path="model.language_model.norm",
        head_path="lm_head",
        vision_path="model.vision_tower",
        projector_path="model.multi_modal_projector",
        text_config_attr="text_config",
        token_id_fields=(("image_token_index", "<image>"), ("video_token_index", "<video>")),
    ),
}


def get_family(name: str) -> FamilySpec:
    """The :class:`FamilySpec` called ``name``."""
    try:
        return FAMILIES[name]
    except KeyError:
        hint = _did_you_mean(name, FAMILIES)
        raise ValueError(f"unknown model family {name!r}{hint}; known: {sorted(FAMILIES)}") from None


def family_of(model_or_config: Any) -> FamilySpec:
    """The family of a model or config, from ``config.model_type`` (e.g. a loaded checkpoint)."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    for spec in FAMILIES.values():
        if spec.model_type == model_type:
            return spec
    known = {s.model_type: s.name for s in FAMILIES.values()}
    raise ValueError(f"model_type {model_type!r} is not a supported VLM family; supported model types: {known}")


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------

PAPER_SHARED_LAYERS, PAPER_NUM_LAYERS = 8, 28  # OmniActor: layers 1..8 of Qwen2-VL-7B's 28 are shared


def paper_shared_layers(num_layers: int) -> int:
    """The paper's split scaled to ``num_layers``: ``round(num_layers * 8 / 28)``, at least 1."""
    return max(1, round(num_layers * PAPER_SHARED_LAYERS / PAPER_NUM_LAYERS))


@dataclass(frozen=True)
class ModelPreset:
    """One model architecture: a family plus its sizes, and the default OmniActor split."""

    name: str
    """Registry name, e.g. ``"tiny-qwen2-vl"`` or ``"qwen2-vl-7b"``."""
    family: str
    """Key of ``FAMILIES``."""
    description: str
    """One line for ``list_presets`` / ``--help``."""
    hidden_size: int
    """Text decoder width."""
    num_layers: int
    """Number of text decoder layers (L)."""
    num_heads: int
    """Attention heads per decoder layer."""
    num_kv_heads: int
    """Key/value heads (grouped-query attention)."""
    intermediate_size: int
    """Width of the decoder's gated MLP."""
    vocab_size: int | None
    """Rows of the embedding / output head; ``None`` = the local tokenizer's size (tiny models)."""
    tie_word_embeddings: bool
    """Output head shares the input embedding's weight."""
    rope_theta: float
    """RoPE base of the text decoder."""
    max_position_embeddings: int
    """Longest context the config declares."""
    rms_norm_eps: float
    """Epsilon of the decoder's RMSNorms."""
    vision_depth: int
    """Vision encoder blocks."""
    vision_hidden_size: int
    """Vision encoder width (Qwen2-VL ``embed_dim``)."""
    vision_heads: int
    """Vision encoder attention heads."""
    vision_intermediate_size: int
    """Vision encoder MLP width (Qwen2-VL: ``mlp_ratio * vision_hidden_size``)."""
    vision_patch_size: int
    """Pixels per side of one vision patch."""
    image_size: int | None
    """Largest square image kept at full resolution by the processor; ``None`` = checkpoint setting
    (LLaVA-OneVision: its SigLIP tile is ``image_size // 2``, or 384 for ``None``)."""
    shared_layers: int
    """Default K: decoder layers 1..K shared by all domains, K+1..L per domain."""
    checkpoint: str | None = None
    """Hugging Face checkpoint this architecture matches (never downloaded); ``None`` for tiny models."""
    published_params: float | None = None
    """Published total parameter count of that checkpoint."""
    aliases: tuple[str, ...] = ()
    """Other names ``get_preset`` accepts."""

    def __post_init__(self) -> None:
        get_family(self.family)
        problems = []
        if self.hidden_size % self.num_heads:
            problems.append(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            problems.append(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.vision_hidden_size % self.vision_heads:
            problems.append(f"vision_hidden_size {self.vision_hidden_size} is not a multiple of vision_heads")
        if not 0 <= self.shared_layers <= self.num_layers:
            problems.append(f"shared_layers {self.shared_layers} is outside 0..num_layers ({self.num_layers})")
        if problems:
            raise ValueError(f"preset {self.name!r}: " + "; ".join(problems))

    @property
    def spec(self) -> FamilySpec:
        """The :class:`FamilySpec` of this preset's family."""
        return get_family(self.family)

    @property
    def is_tiny(self) -> bool:
        """A random-initialised development model (no checkpoint behind it)."""
        return self.checkpoint is None

    def build_config(self, tokenizer: PreTrainedTokenizerFast | None = None) -> PretrainedConfig:
        """The family's ``transformers`` config for this preset (special token ids from ``tokenizer``).

        Without a tokenizer: the local tokenizer of the family (what ``build_model`` uses).
        """
        if tokenizer is None:
            tokenizer = _default_tokenizer(self)
        vocab_size = self.vocab_size if self.vocab_size is not None else len(tokenizer)
        if len(tokenizer) > vocab_size:
            raise ValueError(f"preset {self.name}: tokenizer has {len(tokenizer)} tokens > vocab_size {vocab_size}")
        ids = _special_ids(self.spec, tokenizer)
        return _CONFIG_BUILDERS[self.family](self, vocab_size, ids)


def preset_fields_help() -> dict[str, str]:
    """``{field: one-line help}`` of :class:`ModelPreset`, read from the docstring under each field."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(ModelPreset))).body[0].body
    out = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            out[node.target.id] = " ".join(str(nxt.value.value).split())
    return out


def _tiny(family: str, name: str, aliases: tuple[str, ...] = (), **over: Any) -> ModelPreset:
    """A tiny preset: 8 layers, hidden 128, 4 heads / 2 KV heads, vision depth 2, images <= 224 px."""
    base: dict[str, Any] = dict(
        name=name,
        family=family,
        description=f"tiny random-init {family} (8 layers, hidden 128, vision depth 2) for CPU training and tests",
        hidden_size=128,
        num_layers=8,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=512,
        vocab_size=None,
        tie_word_embeddings=False,
        rope_theta=1_000_000.0,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        vision_depth=2,
        vision_hidden_size=64,
        vision_heads=2,
        vision_intermediate_size=256,
        vision_patch_size=14,
        image_size=224,
        shared_layers=paper_shared_layers(8),
        aliases=aliases,
    )
    base.update(over)
    return ModelPreset(**base)


_PRESET_LIST: tuple[ModelPreset, ...] = (
    _tiny("qwen2-vl", "tiny-qwen2-vl", aliases=("tiny",)),
    _tiny("qwen2.5-vl", "tiny-qwen2.5-vl", vision_intermediate_size=128),
    # SigLIP patch 28 on a 112 px tile: 16 tokens per tile, like Qwen's one token per 28x28 pixels.
    _tiny("llava-onevision", "tiny-llava-onevision", aliases=("tiny-llava-ov",), vision_patch_size=28),
    ModelPreset(
        name="qwen2-vl-2b",
        family="qwen2-vl",
        description="Qwen2-VL-2B(-Instruct) architecture: 28 layers, hidden 1536, tied embeddings",
        hidden_size=1536,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        vision_depth=32,
        vision_hidden_size=1280,
        vision_heads=16,
        vision_intermediate_size=5120,
        vision_patch_size=14,
        image_size=None,
        shared_layers=paper_shared_layers(28),
        checkpoint="Qwen/Qwen2-VL-2B-Instruct",
        published_params=2.21e9,
    ),
    ModelPreset(
        name="qwen2-vl-7b",
        family="qwen2-vl",
        description="Qwen2-VL-7B(-Instruct) architecture, OmniActor's base: 28 layers, hidden 3584",
        hidden_size=3584,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        intermediate_size=18944,
        vocab_size=152064,
        tie_word_embeddings=False,
        rope_theta=1_000_000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        vision_depth=32,
        vision_hidden_size=1280,
        vision_heads=16,
        vision_intermediate_size=5120,
        vision_patch_size=14,
        image_size=None,
        shared_layers=paper_shared_layers(28),
        checkpoint="Qwen/Qwen2-VL-7B-Instruct",
        published_params=8.29e9,
    ),
    ModelPreset(
        name="qwen2.5-vl-3b",
        family="qwen2.5-vl",
        description="Qwen2.5-VL-3B(-Instruct) architecture: 36 layers, hidden 2048, tied embeddings",
        hidden_size=2048,
        num_layers=36,
        num_heads=16,
        num_kv_heads=2,
        intermediate_size=11008,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        vision_depth=32,
        vision_hidden_size=1280,
        vision_heads=16,
        vision_intermediate_size=3420,
        vision_patch_size=14,
        image_size=None,
        shared_layers=paper_shared_layers(36),
        checkpoint="Qwen/Qwen2.5-VL-3B-Instruct",
        published_params=3.75e9,
    ),
    ModelPreset(
        name="qwen2.5-vl-7b",
        family="qwen2.5-vl",
        description="Qwen2.5-VL-7B(-Instruct) architecture, OmniActor's second base: 28 layers, hidden 3584",
        hidden_size=3584,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        intermediate_size=18944,
        vocab_size=152064,
        tie_word_embeddings=False,
        rope_theta=1_000_000.0,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        vision_depth=32,
        vision_hidden_size=1280,
        vision_heads=16,
        vision_intermediate_size=3420,
        vision_patch_size=14,
        image_size=None,
        shared_layers=paper_shared_layers(28),
        checkpoint="Qwen/Qwen2.5-VL-7B-Instruct",
        published_params=8.29e9,
    ),
    ModelPreset(
        name="llava-onevision-0.5b",
        family="llava-onevision",
        description="LLaVA-OneVision-Qwen2-0.5B-OV architecture: Qwen2-0.5B (24 layers, hidden 896) + SigLIP-so400m",
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        vision_depth=26,
        vision_hidden_size=1152,
        vision_heads=16,
        vision_intermediate_size=4304,
        vision_patch_size=14,
        image_size=None,
        shared_layers=paper_shared_layers(24),
        checkpoint="llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
        published_params=0.894e9,
    ),
    ModelPreset(
        name="llava-onevision-7b",
        family="llava-onevision",
        description="LLaVA-OneVision-Qwen2-7B-OV architecture (GEA's base): Qwen2-7B (28 layers, hidden 3584) + SigLIP",
        hidden_size=3584,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        intermediate_size=18944,
        vocab_size=152128,
        tie_word_embeddings=False,
        rope_theta=1_000_000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        vision_depth=26,
        vision_hidden_size=1152,
        vision_heads=16,
        vision_intermediate_size=4304,
        vision_patch_size=14,
        image_size=None,
        shared_layers=paper_shared_layers(28),
        checkpoint="llava-hf/llava-onevision-qwen2-7b-ov-hf",
        published_params=8.03e9,
    ),
)

PRESETS: dict[str, ModelPreset] = {p.name: p for p in _PRESET_LIST}
_ALIASES: dict[str, str] = {a: p.name for p in _PRESET_LIST for a in p.aliases}


class UnknownPresetError(OmniactorError, KeyError):
    """No preset of that name; the message lists the close names and all presets."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def get_preset(name: str | ModelPreset) -> ModelPreset:
    """The preset called ``name`` (or one of its aliases); a preset passes through unchanged."""
    if isinstance(name, ModelPreset):
        return name
    if name in PRESETS:
        return PRESETS[name]
    if name in _ALIASES:
        return PRESETS[_ALIASES[name]]
    raise UnknownPresetError(
        f"unknown model preset {name!r}{_did_you_mean(name, [*PRESETS, *_ALIASES])}; "
        f"known presets: {', '.join(PRESETS)}"
    )


def list_presets() -> list[ModelPreset]:
    """All presets, tiny ones first, in registry order."""
    return list(_PRESET_LIST)


# ---------------------------------------------------------------------------------------------
# Configs, one builder per family
# ---------------------------------------------------------------------------------------------


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen's multimodal RoPE split of ``head_dim // 2`` frequencies into (t, h, w): [16, 24, 24] at 128."""
    if head_dim % 16:
        raise ValueError(f"M-RoPE needs a head dim divisible by 16, got {head_dim}")
    return [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]


def _qwen_text_config(p: ModelPreset, vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    return dict(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=p.max_position_embeddings,
        rms_norm_eps=p.rms_norm_eps,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": p.rope_theta,
            "mrope_section": _mrope_section(p.hidden_size // p.num_heads),
        },
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )


def _qwen2_vl_config(p: ModelPreset, vocab_size: int, ids: dict[str, int]) -> PretrainedConfig:
    from transformers import Qwen2VLConfig

    if p.vision_intermediate_size % p.vision_hidden_size:
        raise ValueError(f"{p.name}: Qwen2-VL's vision MLP width must be a multiple of its width (mlp_ratio)")
    vision = dict(
        depth=p.vision_depth,
        embed_dim=p.vision_hidden_size,
        hidden_size=p.hidden_size,  # the patch merger projects to the text width
        mlp_ratio=p.vision_intermediate_size // p.vision_hidden_size,
        num_heads=p.vision_heads,
        hidden_act="quick_gelu",
        patch_size=p.vision_patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    return Qwen2VLConfig(
        text_config=_qwen_text_config(p, vocab_size, ids),
        vision_config=vision,
        tie_word_embeddings=p.tie_word_embeddings,
        **{field: ids[token] for field, token in p.spec.token_id_fields},
    )


def _qwen2_5_vl_config(p: ModelPreset, vocab_size: int, ids: dict[str, int]) -> PretrainedConfig:
    from transformers import Qwen2_5_VLConfig

    vision = dict(
        depth=p.vision_depth,
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        out_hidden_size=p.hidden_size,
        num_heads=p.vision_heads,
        hidden_act="silu",
        patch_size=p.vision_patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        # full attention every 8th block ([7, 15, 23, 31] at depth 32); the last block when shallower
        fullatt_block_indexes=[i for i in range(p.vision_depth) if i % 8 == 7] or [p.vision_depth - 1],
        tokens_per_second=2,
    )
    return Qwen2_5_VLConfig(
        text_config=_qwen_text_config(p, vocab_size, ids),
        vision_config=vision,
        tie_word_embeddings=p.tie_word_embeddings,
        **{field: ids[token] for field, token in p.spec.token_id_fields},
    )


def _llava_onevision_config(p: ModelPreset, vocab_size: int, ids: dict[str, int]) -> PretrainedConfig:
    from transformers import LlavaOnevisionConfig

    from omniactor.models.local_tokenizer import llava_onevision_grid

    tile, pinpoints = llava_onevision_grid(p.image_size)
    text = dict(
        model_type="qwen2",
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=p.max_position_embeddings,
        rms_norm_eps=p.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": p.rope_theta},
        tie_word_embeddings=p.tie_word_embeddings,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        num_hidden_layers=p.vision_depth,
        num_attention_heads=p.vision_heads,
        patch_size=p.vision_patch_size,
        image_size=tile,
        vision_use_head=False,
    )
    return LlavaOnevisionConfig(
        text_config=text,
        vision_config=vision,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=pinpoints,
        tie_word_embeddings=p.tie_word_embeddings,
        **{field: ids[token] for field, token in p.spec.token_id_fields},
    )


_CONFIG_BUILDERS = {
    "qwen2-vl": _qwen2_vl_config,
    "qwen2.5-vl": _qwen2_5_vl_config,
    "llava-onevision": _llava_onevision_config,
}


def _special_ids(spec: FamilySpec, tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Ids of the tokens a config refers to; a clear error when the tokenizer lacks one."""
    tokens = {"<|endoftext|>", "<|im_end|>", *(t for _, t in spec.token_id_fields)}
    vocab = tokenizer.get_vocab()
    missing = sorted(t for t in tokens if t not in vocab)
    if missing:
        raise ValueError(f"tokenizer lacks the {spec.name} tokens {missing}; build it with build_local_tokenizer")
    return {t: vocab[t] for t in tokens}


def _default_tokenizer(preset: ModelPreset) -> PreTrainedTokenizerFast:
    from omniactor.models.local_tokenizer import build_local_tokenizer

    return build_local_tokenizer(preset.family)


# ---------------------------------------------------------------------------------------------
# Build / load
# ---------------------------------------------------------------------------------------------


def _dtype(dtype: Any) -> torch.dtype:
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _set_generation_defaults(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    """Greedy decoding that stops at the end of a turn, as the instruct checkpoints do."""
    gen = model.generation_config
    eos = [tokenizer.convert_tokens_to_ids(t) for t in (tokenizer.eos_token, tokenizer.pad_token)]
    gen.eos_token_id = list(dict.fromkeys(eos))
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")  # as in the checkpoints
    gen.do_sample = False
    gen.temperature = gen.top_p = gen.top_k = None


def build_model(
    preset: str | ModelPreset,
    tokenizer: PreTrainedTokenizerFast | None = None,
    *,
    seed: int = 0,
    dtype: Any = "float32",
    device: Any = None,
    random_init: bool | None = None,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """``(model, processor)``: the preset's ``*ForConditionalGeneration`` built from config.

    Weights are random (``torch.manual_seed(seed)``); the processor wraps ``tokenizer``
    (default: the family's local tokenizer) and the config's special token ids are that
    tokenizer's. A preset of a real checkpoint (``qwen2-vl-7b``...) needs ``random_init=True``
    (it has no weights: use :func:`load_model` for a checkpoint); build it straight on
    ``device`` (``"cuda"``, or ``"meta"`` to count parameters without memory).
    """
    import torch
    import transformers

    from omniactor.models.local_tokenizer import build_local_processor

    p = get_preset(preset)
    if not p.is_tiny and not random_init:
        raise ValueError(
            f"preset {p.name!r} describes the pretrained checkpoint {p.checkpoint}; load yours with "
            f"load_model('/path/to/{p.checkpoint.split('/')[-1]}'), or pass random_init=True for random weights"
        )
    if tokenizer is None:
        tokenizer = _default_tokenizer(p)
    config = p.build_config(tokenizer)
    processor = build_local_processor(p.family, tokenizer, image_size=p.image_size, patch_size=p.vision_patch_size)
    model_cls = getattr(transformers, p.spec.model_class)
    kwargs: dict[str, Any] = {"dtype": _dtype(dtype)}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    torch.manual_seed(seed)
    if device is None:
        model = model_cls._from_config(config, **kwargs)
    else:
        with torch.device(device):
            model = model_cls._from_config(config, **kwargs)
    _set_generation_defaults(model, tokenizer)
    model.eval()
    return model, processor


_OMNIACTOR_CONFIG_KEYS = ("omniactor", "omniactor_adapters")  # written by models.heterogeneity / adapters


def load_model(
    path: str | os.PathLike,
    *,
    dtype: Any = "auto",
    device_map: Any = None,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """``(model, processor)`` from a local checkpoint directory (``local_files_only``, never the hub).

    The directory holds ``config.json`` + weights and the processor files (tokenizer, image
    processor, chat template), as ``save_pretrained`` of both writes them or a downloaded
    Hugging Face checkpoint has them. The family comes from ``config.model_type``. This is the
    base (dense) model; a converted OmniActor checkpoint loads with
    ``omniactor.models.checkpoint.load_pretrained``.
    """
    import transformers
    from transformers import AutoConfig, AutoProcessor

    from omniactor.models.local_tokenizer import allow_processors_without_torchvision

    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not a directory; load_model takes a local checkpoint directory")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    converted = [key for key in _OMNIACTOR_CONFIG_KEYS if getattr(config, key, None) is not None]
    if converted:
        raise ValueError(
            f"{path}: an omniactor checkpoint (config has {converted}); load it with "
            "omniactor.models.checkpoint.load_pretrained, which rebuilds the converted modules"
        )
    spec = family_of(config)
    model_cls = getattr(transformers, spec.model_class)
    kwargs: dict[str, Any] = {"dtype": _dtype(dtype) if dtype != "auto" else "auto", "local_files_only": True}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = model_cls.from_pretrained(path, config=config, **kwargs)
    allow_processors_without_torchvision()
    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{path}: no usable processor files ({err}); save the processor next to the model "
            "(processor.save_pretrained(path))"
        ) from err
    model.eval()
    return model, processor


def count_parameters(model: Any) -> int:
    """Total parameters of a model (tied weights once); works on the meta device."""
    seen, total = set(), 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


__all__ = [
    "FAMILIES",
    "PRESETS",
    "FamilySpec",
    "ModelPreset",
    "UnknownPresetError",
    "build_model",
    "count_parameters",
    "family_of",
    "get_family",
    "get_preset",
    "list_presets",
    "load_model",
    "paper_shared_layers",
    "preset_fields_help",
]
