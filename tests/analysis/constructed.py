"""State dicts with planted update directions: the similarity each layer must show is known."""

import torch

PREFIX = "model.language_model.layers"
SHAPES = {"self_attn.q_proj": (16, 16), "self_attn.k_proj": (8, 16), "self_attn.v_proj": (8, 16),
          "self_attn.o_proj": (16, 16), "mlp.gate_proj": (32, 16), "mlp.up_proj": (32, 16),
          "mlp.down_proj": (16, 32)}


def base_state(layers: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A decoder of ``layers`` layers with q/k/v/o and gate/up/down, plus parts that are not compared."""
    g = torch.Generator().manual_seed(seed)
    state = {"model.language_model.embed_tokens.weight": torch.randn(50, 16, generator=g),
             "lm_head.weight": torch.randn(50, 16, generator=g),
             "model.visual.blocks.0.attn.qkv.weight": torch.randn(24, 8, generator=g)}
    for layer in range(layers):
        for module, shape in SHAPES.items():
            state[f"{PREFIX}.{layer}.{module}.weight"] = torch.randn(*shape, generator=g)
        state[f"{PREFIX}.{layer}.self_attn.q_proj.bias"] = torch.randn(16, generator=g)
        state[f"{PREFIX}.{layer}.input_layernorm.weight"] = torch.ones(16)
    return state


def agreeing_then_orthogonal(base: dict[str, torch.Tensor], shared: int, seed: int = 1,
                             noise: float = 0.0) -> tuple[dict, dict]:
    """Two runs: in layers ``< shared`` both deltas point the same way (plus ``noise``), deeper ones are orthogonal.

    The deeper deltas are orthogonal per matrix (Gram-Schmidt), so every aggregate is 0 too.
    """
    g = torch.Generator().manual_seed(seed)
    run_a, run_b = dict(base), dict(base)
    for key, weight in base.items():
        if f"{PREFIX}." not in key or weight.dim() != 2:
            continue
        layer = int(key[len(PREFIX) + 1:].split(".")[0])
        direction = torch.randn(weight.shape, generator=g, dtype=torch.float64)
        other = torch.randn(weight.shape, generator=g, dtype=torch.float64)
        if layer < shared:
            other = direction + noise * other
        else:
            other = other - (other * direction).sum() / (direction * direction).sum() * direction
        run_a[key] = (weight.double() + 0.01 * direction).float()
        run_b[key] = (weight.double() + 0.01 * other).float()
    # fine-tunes add action-vocabulary rows: these must not disturb the comparison
    for run in (run_a, run_b):
        run["lm_head.weight"] = torch.cat([base["lm_head.weight"], torch.zeros(4, 16)])
    return run_a, run_b


def random_run(base: dict[str, torch.Tensor], seed: int, common: float = 0.0) -> dict:
    """A run with random deltas plus ``common`` x a direction every such run shares (same for all seeds)."""
    own, shared = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(99)
    run = dict(base)
    for key in sorted(base):
        weight = base[key]
        if weight.dim() == 2 and f"{PREFIX}." in key:
            delta = torch.randn(weight.shape, generator=own) + common * torch.randn(weight.shape, generator=shared)
            run[key] = weight + 1e-2 * delta
    return run
