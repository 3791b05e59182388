"""Update similarity on constructed deltas: known answers, streamed == in memory, reports written."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from omniactor.analysis.report import analyze_checkpoints
from omniactor.analysis.update_similarity import compute_update_similarity, reference_cosines
from omniactor.analysis.weights import CheckpointSource, StateDictSource, WeightsError, layer_matrices

from .constructed import PREFIX, agreeing_then_orthogonal, base_state, random_run


def save_folder(state: dict, folder, shards: int = 1, config: dict | None = None):
    """A checkpoint folder: one safetensors file, or ``shards`` files with an index."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    if shards == 1:
        save_file({k: state[k].contiguous() for k in keys}, str(folder / "model.safetensors"))
    else:
        weight_map = {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = keys[i::shards]
            save_file({k: state[k].contiguous() for k in part}, str(folder / name))
            weight_map.update({k: name for k in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "qwen2_vl"}))
    return folder


def test_layer_matrices_are_the_decoder_projections_only():
    matrices = layer_matrices(StateDictSource(base_state(3)))
    assert [(m.layer, m.group, m.name) for m in matrices[:7]] == [
        (0, "attention", "q"), (0, "attention", "k"), (0, "attention", "v"), (0, "attention", "o"),
        (0, "ffn", "gate"), (0, "ffn", "up"), (0, "ffn", "down")]
    assert len(matrices) == 21  # no bias, norm, embedding, head or vision tensor


@pytest.mark.parametrize("shared", [0, 2, 5])
def test_agreeing_then_orthogonal_deltas_give_one_then_zero(shared):
    base = base_state(6)
    run_a, run_b = agreeing_then_orthogonal(base, shared)
    result = compute_update_similarity(StateDictSource(base), {"gui": StateDictSource(run_a),
                                                               "embodied": StateDictSource(run_b)},
                                       chunk_elements=40, progress=False)
    for scope in ("layer", "attention", "ffn"):
        curve = result.curve(scope)
        assert all(v > 0.999 for v in curve[:shared]), (scope, curve)
        assert all(abs(v) < 1e-5 for v in curve[shared:]), (scope, curve)
    for name in ("q", "k", "v", "o", "gate", "up", "down"):
        assert result.curve("matrix", name)[shared:] == pytest.approx([0.0] * (6 - shared), abs=1e-5)


def test_noisy_agreement_gives_the_expected_cosine():
    """Deltas d and d + s*n with n independent: cos is about 1 / sqrt(1 + s^2)."""
    base = base_state(4)
    run_a, run_b = agreeing_then_orthogonal(base, shared=4, noise=1.0)
    result = compute_update_similarity(StateDictSource(base), {"a": StateDictSource(run_a),
                                                               "b": StateDictSource(run_b)}, progress=False)
    assert result.curve("layer") == pytest.approx([1 / math.sqrt(2)] * 4, abs=0.05)


@pytest.mark.parametrize("shards", [1, 3])
def test_streamed_from_folders_equals_the_in_memory_reference(tmp_path, shards):
    base = base_state(4)
    runs = {"gui": random_run(base, 1, common=1.0), "embodied": random_run(base, 2, common=1.0),
            "discrete": random_run(base, 3, common=0.3)}
    base_dir = save_folder(base, tmp_path / "base", shards)
    sources = {label: CheckpointSource(save_folder(state, tmp_path / label, shards)) for label, state in runs.items()}
    streamed = compute_update_similarity(CheckpointSource(base_dir), sources, chunk_elements=50,
                                         progress=False).lookup()
    reference = reference_cosines(base, runs)
    assert streamed.keys() == reference.keys()
    assert len(reference) == 3 * 4 * (7 + 3)  # pairs x layers x (7 matrices + attention, ffn, layer)
    for key, value in reference.items():
        assert streamed[key] == pytest.approx(value, abs=1e-9), key
    assert 0.3 < reference[(0, "layer", "layer", "gui", "embodied")] < 0.7  # the numbers are not trivial


def test_report_writes_tables_plots_and_a_split_config_train_accepts(tmp_path):
    from omniactor.training.config import load_config

    base = base_state(8)
    run_a, run_b = agreeing_then_orthogonal(base, shared=3, noise=0.2)
    base_dir = save_folder(base, tmp_path / "base")
    runs = {"gui": save_folder(run_a, tmp_path / "gui"), "embodied": save_folder(run_b, tmp_path / "embodied")}
    _, proposal, written = analyze_checkpoints(base_dir, runs, tmp_path / "out", progress=False)
    assert proposal.shared_layers == 3 and proposal.alternatives == {"changepoint": 3}
    for key in ("plot_ffn", "plot_attention", "plot_layers"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = written["csv"].read_text().splitlines()
    assert lines[0].startswith("layer,scope,group,name,run_a,run_b,cosine")
    assert len(lines) == 1 + 8 * (7 + 3)
    document = json.loads(written["json"].read_text())
    assert document["split"]["shared_layers"] == 3
    assert len(document["curves"]["layer"]) == 8 and document["pairwise"]["layer"][0][0][1] > 0.9
    config = load_config(written["split"])
    assert (config.variant, config.shared_layers) == ("omniactor", 3)


def test_three_runs_give_a_pairwise_matrix_per_layer(tmp_path):
    base = base_state(4)
    gui, embodied = agreeing_then_orthogonal(base, shared=2)
    _, discrete = agreeing_then_orthogonal(base, shared=4, seed=1)  # agrees with gui everywhere
    folders = {name: save_folder(state, tmp_path / name) for name, state in
               (("gui", gui), ("embodied", embodied), ("discrete", discrete))}
    result, proposal, written = analyze_checkpoints(save_folder(base, tmp_path / "base"), folders, tmp_path / "out",
                                                    progress=False)
    matrix = result.pair_matrix(3)
    assert matrix[0][2] == pytest.approx(1.0, abs=1e-6)  # gui ~ discrete
    assert abs(matrix[0][1]) < 1e-5  # gui ~ embodied
    assert result.curve("layer")[3] == pytest.approx(min(matrix[0][1], matrix[0][2], matrix[1][2]))
    assert proposal.shared_layers == 2
    assert written["plot_pairs"].exists()


def test_runs_that_are_not_fine_tunes_of_the_base_are_refused(tmp_path):
    base = base_state(2)
    good = random_run(base, 1)
    wrong_shape = dict(good, **{f"{PREFIX}.1.mlp.up_proj.weight": torch.zeros(30, 16)})
    lora = dict(good, **{f"{PREFIX}.1.self_attn.q_proj.lora_A.weight": torch.zeros(4, 16)})
    missing = {k: v for k, v in good.items() if k != f"{PREFIX}.0.self_attn.k_proj.weight"}
    for bad, message in ((wrong_shape, "has shape"), (lora, "unmerged LoRA"), (missing, "lacks 1 ")):
        with pytest.raises(WeightsError, match=message):
            compute_update_similarity(StateDictSource(base), {"a": StateDictSource(good), "b": StateDictSource(bad)},
                                      progress=False)
    with pytest.raises(ValueError, match="at least two runs"):
        compute_update_similarity(StateDictSource(base), {"a": StateDictSource(good)}, progress=False)
    with pytest.raises(WeightsError, match="no model.safetensors"):
        CheckpointSource(tmp_path)


def test_an_unchanged_matrix_is_reported_not_hidden():
    base = base_state(2)
    run_a, run_b = agreeing_then_orthogonal(base, shared=1)
    run_b[f"{PREFIX}.1.self_attn.v_proj.weight"] = base[f"{PREFIX}.1.self_attn.v_proj.weight"]
    result = compute_update_similarity(StateDictSource(base), {"a": StateDictSource(run_a),
                                                               "b": StateDictSource(run_b)}, progress=False)
    assert result.unchanged == ["b: layer 1 v"]
    assert math.isnan(result.curve("matrix", "v")[1])
    assert not math.isnan(result.curve("attention")[1])  # the group's other matrices moved


def test_runs_that_name_the_layer_stack_differently_are_matched_by_layer_and_module():
    """A hub checkpoint stores Qwen2-VL's layers as model.layers.N, omniactor as model.language_model.layers.N."""
    base = base_state(3)
    run_a, run_b = agreeing_then_orthogonal(base, shared=2)
    legacy_b = {k.replace("model.language_model.layers.", "model.layers."): v for k, v in run_b.items()}
    same = compute_update_similarity(StateDictSource(base), {"a": StateDictSource(run_a), "b": StateDictSource(run_b)},
                                     progress=False).lookup()
    renamed = compute_update_similarity(StateDictSource(base), {"a": StateDictSource(run_a),
                                                                "b": StateDictSource(legacy_b)}, progress=False)
    assert renamed.lookup() == same
