"""The critic: one value per row from the final hidden state (and the state beside it), trainable."""

import torch

from omniactor.models.adapters import ValueHead
from omniactor.rl.algorithms import explained_variance, ppo_value_loss


def test_the_value_head_learns_returns_from_the_final_states():
    torch.manual_seed(0)
    head = ValueHead(hidden_size=16, width=32, state_dim=4)
    features = torch.randn(256, 20)  # hidden 16 + state 4
    returns = features[:, :3].sum(1) + 0.5 * features[:, -1]
    assert head(features).shape == (256,) and head(features).dtype == torch.float32
    before = explained_variance(head(features).detach(), returns)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(300):
        values = head(features)
        loss = ppo_value_loss(values, values.detach(), returns, clip=None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = explained_variance(head(features).detach(), returns)
    assert before < 0.2 and after > 0.9
