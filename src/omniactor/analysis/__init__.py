"""Where to split: measurements that choose OmniActor's shared depth K.

- ``weights``: a checkpoint's decoder-layer projection matrices, read one row block at a
  time from memory-mapped safetensors (a 7B model never sits in memory whole).
- ``update_similarity``: for every layer and projection, the cosine between two fine-tunes'
  parameter deltas from their common base (the paper's parameter-update similarity).
- ``split_rule``: the documented rule that reads K off the per-layer curve, and the
  ``shared_layers: K`` config snippet for ``omniactor train``.
- ``probe``: one command from data to K: save the base, fine-tune it once per domain, compare.
- ``features``: hidden features of each domain's samples per layer and their similarity.
- ``plots``: the figures (matplotlib, Agg backend).

``omniactor analyze --help`` lists the commands; ``docs/analysis.md`` documents the rule.
Importing this package is light: torch, safetensors and matplotlib load in the functions.
"""
