"""The RL token body: role embedding, the AdaPool query on the agent's own token, CLS token."""

import torch

from poolwise.models.token_policy import TokenEncoder


def test_adapool_queries_the_agents_own_token():
    torch.manual_seed(0)
    enc = TokenEncoder(dim=6, depth=1, num_heads=6, ffn_dim=12, pooler="adapool", query_index=-1, roles=False)
    enc.eval()  # no feed-forward dropout
    x = torch.rand(3, 8, 5)
    base = enc(x)
    y = x.clone()
    y[:, -1, :3] += 0.5                      # change only the query token: the output moves
    assert not torch.allclose(enc(y), base)
    perm = torch.cat([torch.randperm(7), torch.tensor([7])])
    torch.testing.assert_close(enc(x[:, perm]), base, atol=1e-5, rtol=1e-5)  # a set function otherwise
    roles = TokenEncoder(dim=3, depth=1, num_heads=3, ffn_dim=12, pooler="cls_token")
    assert roles.cls is not None and roles(torch.zeros(2, 4, 5)).shape == (2, 3)


def test_roles_are_embedded_and_init_is_the_papers_weight_scale():
    torch.manual_seed(0)
    enc = TokenEncoder(dim=3, depth=2, num_heads=3, ffn_dim=12, init_std=0.2).eval()
    assert enc.input.in_features == 4 + 4                    # x, y, vx, vy + a 4-d role embedding
    w = torch.cat([m.weight.detach().flatten() for m in enc.modules() if isinstance(m, torch.nn.Linear)])
    assert 0.15 < float(w.std()) < 0.25
    x = torch.zeros(1, 3, 5)
    y = x.clone()
    y[0, 1, 4] = 3.0                                          # same features, another role
    assert not torch.allclose(enc(x), enc(y))
