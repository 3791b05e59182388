"""Evaluation: how well an agent acts, offline against recorded steps and online in environments.

- ``gui_metrics``: offline GUI step scoring under named protocols (``osatlas``, ``qwen25vl``,
  ``gea``, ``odyssey``): ``score_step(prediction, sample, protocol) -> StepScore``.
- ``offline``: ``evaluate_offline`` over a unified dataset folder (``results.json``,
  ``report.md``) and the ``omniactor eval-offline`` command.

Nothing is imported here, so ``import omniactor.evaluation`` stays free; import the module you need.
"""
