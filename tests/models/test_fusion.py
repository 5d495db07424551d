"""FrameFusion and InstanceFusion against slow references written directly from eq. 1-7 (DESIGN §2.1, §2.2).

The references read the modules' parameter tensors but none of their methods, and loop explicitly over
tokens / instances / heads, so they share no vectorisation (or bug) with the modules.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dsfnet.models.fusion import FrameFusion, InstanceFusion, blockwise_attention

TOL = 1e-8


def randomise(module: nn.Module, seed: int = 0, std: float = 0.5) -> nn.Module:
    """Random weights everywhere, θ/γ included, so that the fused term is not trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


def random_boxes(m: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(m, 2, generator=gen, dtype=torch.float64) * 50
    wh = torch.rand(m, 2, generator=gen, dtype=torch.float64) * 40 + 1
    return torch.cat([xy, xy + wh], dim=1)


# ---------------------------------------------------------------- references


def reference_frame_fusion(module: FrameFusion, feats: torch.Tensor) -> torch.Tensor:
    """Eq. 1-3 with explicit loops over the n·d channel tokens i, j (with ``same_channel``, over the j of token i's
    channel only; with ``subtract_own_value``, less token i's own value)."""
    n, d, h, w = feats.shape

    def tokens(conv: nn.Conv2d | None) -> list[torch.Tensor]:
        out = []
        for f in range(n):
            x = feats[f].reshape(d, h * w)
            if conv is not None:  # a 1x1 convolution is W @ x + b at every position
                x = conv.weight[:, :, 0, 0] @ x + conv.bias[:, None]
            out.extend(x[c] for c in range(d))
        return out

    f_c, phi, varphi, theta = tokens(None), tokens(module.phi), tokens(module.varphi), tokens(module.theta)
    if module.normalize_tokens:  # each ϕ / φ token divided by its root-mean-square (plus the module's 1e-6)
        phi, varphi = ([t / math.sqrt(float(t @ t) / (h * w) + 1e-6) for t in group] for group in (phi, varphi))
    scale = 1 / math.sqrt(h * w) if module.scale_by_sqrt_hw else 1.0
    enhanced = []
    for i in range(n * d):
        keys = [j for j in range(n * d) if not module.same_channel or j % d == i % d]
        a = [float(phi[i] @ varphi[j]) * scale for j in keys]
        top = max(a)
        e = [math.exp(a_j - top) for a_j in a]
        total = sum(e)
        f_e = f_c[i] - theta[i] if module.subtract_own_value else f_c[i].clone()
        for e_j, j in zip(e, keys):
            f_e += e_j / total * theta[j]
        enhanced.append(f_e)
    return torch.stack(enhanced).reshape(n, d, h, w)


def reference_embedding(x: float, freqs: int) -> list[float]:
    """Relation Networks' ϱ for one scalar: F sines then F cosines of 100·x / 1000^(i/F)."""
    phases = [100 * x / 1000 ** (i / freqs) for i in range(freqs)]
    return [math.sin(p) for p in phases] + [math.cos(p) for p in phases]


def reference_pair_embedding(box_k, box_l, freqs: int, eps: float) -> list[float]:
    wk, hk = max(box_k[2] - box_k[0], 1e-3), max(box_k[3] - box_k[1], 1e-3)
    wl, hl = max(box_l[2] - box_l[0], 1e-3), max(box_l[3] - box_l[1], 1e-3)
    scalars = (math.log(wk / wl), math.log(hk / hl), math.log(abs(wk / hk - wl / hl) + eps))
    return [v for s in scalars for v in reference_embedding(s, freqs)]


def reference_layer_norm(module: InstanceFusion, feats: torch.Tensor) -> torch.Tensor:
    """The features ξ and ζ read: LayerNorm written out row by row when the module has one, else as they are."""
    if not isinstance(module.norm, nn.LayerNorm):
        return feats
    rows = []
    for row in feats:
        mean = sum(row.tolist()) / len(row)
        variance = sum((v - mean) ** 2 for v in row.tolist()) / len(row)
        rows.append((row - mean) / math.sqrt(variance + module.norm.eps) * module.norm.weight + module.norm.bias)
    return torch.stack(rows)


def reference_appearance(module: InstanceFusion, xi: torch.Tensor, zeta: torch.Tensor) -> float:
    """z of one head for one (k, l) pair: eq. 6's scaled dot product, or s·cos with s = min(e^log_scale, 100)."""
    if module.log_scale is None:
        return float(xi @ zeta) / math.sqrt(len(xi))
    scale = min(math.exp(float(module.log_scale)), 100.0)
    return scale * float(xi @ zeta) / (float(xi.norm()) * float(zeta.norm()))


def reference_instance_fusion(module: InstanceFusion, feats: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Eq. 4-7 with explicit loops over heads, query instances k and key instances l."""
    m, dim = feats.shape
    heads = module.num_heads
    normed = reference_layer_norm(module, feats)
    xi = normed @ module.xi.weight.T + module.xi.bias
    zeta = normed @ module.zeta.weight.T
    gamma = feats @ module.gamma.weight.T + module.gamma.bias
    d_k, d_v = xi.shape[1] // heads, dim // heads
    box_list = boxes.tolist()
    psi = module.psi.weight.tolist() if module.psi is not None else None
    enhanced = feats.clone()
    for head in range(heads):
        ks, vs = slice(head * d_k, (head + 1) * d_k), slice(head * d_v, (head + 1) * d_v)
        for k in range(m):
            logits = []
            for l in range(m):
                z = reference_appearance(module, xi[k, ks], zeta[l, ks])
                r = 0.0
                if psi is not None:
                    emb = reference_pair_embedding(box_list[k], box_list[l], module.embed_freqs, module.eps)
                    r = sum(wt * e for wt, e in zip(psi[head], emb))
                logits.append(z + r)
            top = max(logits)
            e = [math.exp(x - top) for x in logits]
            total = sum(e)
            for l in range(m):
                enhanced[k, vs] += e[l] / total * gamma[l, vs]
    return enhanced


# ---------------------------------------------------------------- frame fusion

FRAME_CASES = [  # n, d, h, w, scale_by_sqrt_hw, normalize_tokens
    (1, 3, 2, 5, True, False),
    (2, 4, 3, 3, True, False),
    (3, 5, 5, 7, True, False),
    (2, 3, 1, 1, False, False),
    (3, 2, 4, 3, False, False),
    (3, 5, 5, 7, True, True),
    (2, 4, 3, 3, False, True),
]


@pytest.mark.parametrize("n,d,h,w,scale,normalize", FRAME_CASES)
def test_frame_fusion_matches_reference(n, d, h, w, scale, normalize):
    module = randomise(FrameFusion(d, scale_by_sqrt_hw=scale, normalize_tokens=normalize).double(), seed=n * 100 + d)
    feats = torch.randn(n, d, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        expected = reference_frame_fusion(module, feats)
        full = module(feats)
        assert (full - expected).abs().max() < TOL
        for f in range(n):  # the test-frame path equals the matching rows of the full computation
            assert (module(feats, query_frames=[f]) - expected[f : f + 1]).abs().max() < TOL


def test_frame_fusion_query_frames_order_and_fuse_with_cached_keys():
    module = randomise(FrameFusion(6).double())
    feats = torch.randn(4, 6, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        full = module(feats)
        keys, values = module.keys_values(feats)
        assert keys.shape == values.shape == (4 * 6, 5 * 3)
        picked = module(feats, query_frames=[3, 1])
        assert torch.allclose(picked, full[[3, 1]], rtol=0, atol=1e-12)
        assert torch.allclose(module(feats[[3, 1]], module.memory(feats[[0, 2]])), picked, rtol=0, atol=1e-12)
        for frames in ((3, 1), torch.tensor([3, 1])):
            assert torch.allclose(module(feats, query_frames=frames), picked, rtol=0, atol=1e-12)
        assert torch.allclose(module(feats, query_frames=range(1, 3)), full[1:3], rtol=0, atol=1e-12)


def test_normalized_tokens_make_the_attention_independent_of_the_feature_scale():
    """With unit-RMS tokens a logit is sqrt(h·w)·cos: scaling the conv4 maps (ImageNet features grow from RMS 5
    to 15 in training) leaves the attention as it is, where the paper's dot product sharpens it towards one-hot."""
    n, d, h, w = 3, 6, 4, 5
    feats = torch.randn(n, d, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for normalize in (True, False):
        module = randomise(FrameFusion(d, normalize_tokens=normalize).double(), seed=1)
        with torch.no_grad():
            module.phi.bias.zero_(), module.varphi.bias.zero_()  # biases do not scale with the features
            weights, scaled = module.attention_weights(feats), module.attention_weights(10 * feats)
            # the memory (cached) path normalises its keys the same way
            assert torch.allclose(module(feats[[2]], module.memory(feats[[0, 1]])), module(feats, query_frames=[2]),
                                  rtol=0, atol=1e-12)
        if normalize:
            assert torch.allclose(weights, scaled, rtol=0, atol=1e-5)  # up to the 1e-6 inside the rms
            logits = torch.log(weights) - torch.log(weights).mean(dim=1, keepdim=True)
            assert logits.abs().max() <= 2 * math.sqrt(h * w)  # |sqrt(h·w)·cos| <= sqrt(h·w), minus the mean
        else:
            assert scaled.max(dim=1).values.mean() > weights.max(dim=1).values.mean() + 0.1


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 100])
def test_frame_fusion_chunked_equals_unchunked(chunk_size):
    feats = torch.randn(3, 5, 4, 7, dtype=torch.float64)
    whole = randomise(FrameFusion(5).double())
    chunked = FrameFusion(5, chunk_size=chunk_size).double()
    chunked.load_state_dict(whole.state_dict())
    with torch.no_grad():
        assert torch.allclose(chunked(feats), whole(feats), rtol=0, atol=1e-12)
        assert torch.allclose(chunked(feats, query_frames=[2]), whole(feats)[2:], rtol=0, atol=1e-12)


def test_frame_fusion_chunks_bound_the_logits():
    """No matmul result larger than chunk_size × n·d exists, whatever the query count."""
    n, d, chunk = 3, 8, 5
    module = randomise(FrameFusion(d, chunk_size=chunk))
    largest = []

    class Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in (torch.Tensor.__matmul__, torch.Tensor.matmul, torch.matmul, torch.softmax, torch.Tensor.softmax,
                        torch.Tensor.exp_):
                largest.append(out.numel())
            return out

    with torch.no_grad(), Spy():
        module(torch.randn(n, d, 4, 4))
    assert largest and max(largest) <= max(chunk * n * d, chunk * 16)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 9), (13, 5), (38, 63)])
def test_frame_fusion_any_image_size(h, w):
    module = randomise(FrameFusion(4))
    feats = torch.randn(2, 4, h, w)
    with torch.no_grad():
        assert module(feats).shape == (2, 4, h, w)
        assert module(feats, query_frames=[0]).shape == (1, 4, h, w)


def test_frame_fusion_is_identity_at_init():
    module = FrameFusion(6)
    feats = torch.randn(3, 6, 5, 7)
    assert torch.equal(module(feats), feats)
    assert torch.equal(module(feats, query_frames=[1]), feats[1:2])


@pytest.mark.parametrize("identity", [False, True])
def test_identity_projections_make_each_channel_attend_to_itself_across_frames(identity):
    """With ϕ = φ = identity and unit-RMS tokens, a logit is sqrt(h·w)·cos(F_i, F_j): each channel's best key is
    itself, and in a slightly changed copy of its frame the same channel beats every other one. Random ϕ, φ
    (PyTorch's initialisation) put no such weight on the same channel."""
    torch.manual_seed(0)
    d, h, w = 16, 6, 8
    frame = torch.randn(1, d, h, w)
    clip = torch.cat([frame, frame + 0.3 * torch.randn(1, d, h, w)])  # [2, d, h, w]
    module = FrameFusion(d, normalize_tokens=True, identity_projections=identity)
    with torch.no_grad():
        weights = module.attention_weights(clip, query_frames=[0])  # [d, 2·d]
    same_channel = weights[:, :d].diagonal() + weights[:, d:].diagonal()  # [d]
    if identity:
        assert torch.equal(module.phi.weight[:, :, 0, 0], torch.eye(d)) and not module.varphi.bias.any()
        assert torch.equal(weights[:, :d].argmax(dim=1), torch.arange(d))
        assert torch.equal(weights[:, d:].argmax(dim=1), torch.arange(d))
        assert same_channel.min() > 0.5  # against 2 / (2·d) = 0.0625 for uniform attention
    else:
        assert same_channel.mean() < 0.2
    assert torch.equal(module(clip), clip)  # θ still starts at zero: the module is the identity either way


def test_value_init_starts_theta_as_a_multiple_of_the_identity():
    """``value_init = w``: θ is w·I, so the module adds w times its attention-weighted mixture of the clip's raw
    maps, computed here from the attention weights by hand."""
    torch.manual_seed(0)
    d, h, w = 8, 4, 5
    clip = torch.randn(3, d, h, w)
    module = FrameFusion(d, normalize_tokens=True, identity_projections=True, value_init=0.5)
    assert torch.equal(module.theta.weight[:, :, 0, 0], 0.5 * torch.eye(d)) and not module.theta.bias.any()
    with torch.no_grad():
        weights = module.attention_weights(clip, query_frames=[1])  # [d, 3·d]
        mixture = (weights @ clip.flatten(0, 1).flatten(1)).view(1, d, h, w)
        torch.testing.assert_close(module(clip, query_frames=[1]), clip[1:2] + 0.5 * mixture)


def test_subtract_own_value_moves_each_map_towards_the_frames_mixture():
    """``subtract_own_value``: eq. 1 less each query token's own value, ``F + S·θ(F) − θ(F)``, checked against the
    attention weights by hand for a random θ (bias included); with θ = w·I it is ``F + w·(S·F − F)``, and at the
    design's θ = 0 the module is still the identity."""
    torch.manual_seed(1)
    d, h, w = 6, 3, 4
    clip = torch.randn(3, d, h, w)
    assert torch.equal(FrameFusion(d, subtract_own_value=True)(clip), clip)
    module = FrameFusion(d, normalize_tokens=True, identity_projections=True, value_init=0.5, subtract_own_value=True)
    with torch.no_grad():
        weights = module.attention_weights(clip, query_frames=[2])  # [d, 3·d]
        mixture = (weights @ clip.flatten(0, 1).flatten(1)).view(1, d, h, w)
        torch.testing.assert_close(module(clip, query_frames=[2]), clip[2:3] + 0.5 * (mixture - clip[2:3]))
        randomise(module)
        values = module.theta(clip)  # [3, d, h, w], bias included
        weights = module.attention_weights(clip)  # [3·d, 3·d]
        expected = clip + (weights @ values.flatten(0, 1).flatten(1)).view_as(clip) - values
        torch.testing.assert_close(module(clip), expected)


@pytest.mark.parametrize("subtract", [False, True])
def test_same_channel_attention_matches_reference_and_weighs_only_frames(subtract):
    """``same_channel``: each token's softmax over the same channel of the n frames (eq. 2 restricted), against the
    loop reference for random ϕ, φ, θ; the weights it reports are zero off the token's channel and are the ones
    applied; the memory (cached) path and the test-frame rows equal the clip's own computation."""
    n, d, h, w = 3, 4, 3, 5
    module = randomise(FrameFusion(d, normalize_tokens=True, subtract_own_value=subtract, same_channel=True).double(),
                       seed=7)
    feats = torch.randn(n, d, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = reference_frame_fusion(module, feats)
        assert (module(feats) - expected).abs().max() < TOL
        assert (module(feats[[2]], module.memory(feats[[0, 1]])) - expected[2:]).abs().max() < TOL
        assert (module(feats, query_frames=[1]) - expected[1:2]).abs().max() < TOL
        weights = module.attention_weights(feats)  # [n·d, n·d]
        same = torch.arange(n * d)[:, None] % d == torch.arange(n * d)[None, :] % d
        assert not weights[~same].any() and torch.allclose(weights.sum(-1), torch.ones(n * d, dtype=torch.float64))
        values = module.theta(feats).flatten(0, 1).flatten(1)
        fused = feats + (weights @ values).view_as(feats) - (module.theta(feats) if subtract else 0)
        assert (fused - expected).abs().max() < TOL
    full = FrameFusion(d, normalize_tokens=True, subtract_own_value=subtract).double()
    full.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert (full(feats) - expected).abs().max() > 1e-3  # eq. 2 over all channels weighs differently


def test_same_channel_attention_records_statistics_over_the_frames_and_trains_every_projection():
    module = randomise(FrameFusion(3, same_channel=True).double(), seed=8, std=0.4)
    feats = torch.randn(3, 3, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    module.train()
    module(feats[:1], module.memory(feats[1:])).sum().backward()
    stats = module.pop_statistics()
    with torch.no_grad():
        weights = module.attention_weights(torch.cat([feats[1:], feats[:1]]), query_frames=[2])
    weights = weights[weights > 0].view(3, 3)  # each query channel's three frames
    assert stats["entropy"] == pytest.approx(float(-(weights * weights.log()).sum(-1).mean()), rel=1e-9)
    assert stats["logit_std"] == pytest.approx(float(weights.log().std(-1, correction=0).mean()), rel=1e-9)
    assert stats["max_entropy"] == pytest.approx(math.log(3))  # three frames, not nine tokens
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_frame_fusion_gradients():
    module = FrameFusion(4)
    feats = torch.randn(3, 4, 5, 3)
    weights = torch.randn(3, 4, 5, 3)
    (module(feats) * weights).sum().backward()
    assert module.theta.weight.grad.abs().sum() > 0  # training can start from the zero init
    module.zero_grad()
    randomise(module)
    (module(feats) * weights).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- instance fusion

INSTANCE_CASES = [  # m, dim, heads, key_dim, geometry, embed_freqs
    (5, 8, 2, 6, True, 8),
    (9, 12, 3, 9, True, 4),
    (6, 16, 1, 4, True, 2),
    (7, 8, 4, 8, False, 8),
    (4, 6, 2, 2, False, 8),
]


@pytest.mark.parametrize("m,dim,heads,key_dim,geometry,freqs", INSTANCE_CASES)
def test_instance_fusion_matches_reference(m, dim, heads, key_dim, geometry, freqs):
    module = InstanceFusion(dim, heads, key_dim, geometry=geometry, embed_freqs=freqs).double()
    randomise(module, seed=m * 10 + heads, std=0.3)
    feats = torch.randn(m, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(m))
    boxes = random_boxes(m, seed=m)
    boxes[0, 2] = boxes[0, 0]  # a degenerate (zero-width) proposal: widths clamp to 1e-3
    with torch.no_grad():
        expected = reference_instance_fusion(module, feats, boxes)
        assert (module(feats, boxes) - expected).abs().max() < TOL
        for k in range(m):  # the test-frame path equals the matching rows of the full computation
            rows = module(feats, boxes, query_index=torch.tensor([k]))
            assert (rows - expected[k : k + 1]).abs().max() < TOL


@pytest.mark.parametrize("logits,layer_norm", [("cosine", False), ("dot", True), ("cosine", True)])
def test_bounded_instance_fusion_matches_reference(logits, layer_norm):
    module = InstanceFusion(12, 3, 9, embed_freqs=4, logits=logits, layer_norm=layer_norm).double()
    randomise(module, seed=5, std=0.3)
    feats = torch.randn(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 3
    boxes = random_boxes(7, seed=7)
    with torch.no_grad():
        expected = reference_instance_fusion(module, feats, boxes)
        assert (module(feats, boxes) - expected).abs().max() < TOL


def test_bounded_logits_do_not_grow_with_the_feature_scale():
    """Cosine logits stay within ±s and LayerNorm makes the attention independent of the features' scale (the
    values still scale): what eq. 6's dot product of growing RoI features does not do."""
    feats = torch.rand(6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    boxes = random_boxes(6, seed=3)
    for kwargs in ({"logits": "cosine"}, {"layer_norm": True}):
        module = randomise(InstanceFusion(8, 2, 8, geometry=False, **kwargs).double(), seed=1, std=0.5)
        with torch.no_grad():
            weights = [module.attention_weights(feats * c, boxes, feats * c, boxes) for c in (10.0, 1000.0)]
            if "layer_norm" in kwargs:
                assert torch.allclose(weights[0], weights[1], atol=1e-6)
            else:
                keys, _ = module.project_keys(feats * 100)
                logits = module._logits(feats * 100, keys, None, slice(0, 6))
                assert logits.abs().max() <= math.exp(float(module.log_scale)) + 1e-9
    plain = randomise(InstanceFusion(8, 2, 8, geometry=False).double(), seed=1, std=0.5)
    with torch.no_grad():
        sharp = plain.attention_weights(feats * 100, boxes, feats * 100, boxes)
    assert sharp.max(dim=-1).values.min() > 0.99  # eq. 6 as written: one-hot at this scale


def test_init_std_draws_xi_and_zeta_from_a_small_normal():
    torch.manual_seed(0)
    module = InstanceFusion(256, 4, 256, init_std=0.01)
    for linear in (module.xi, module.zeta):
        assert abs(float(linear.weight.detach().std()) - 0.01) < 0.0005
    assert not module.xi.bias.any() and not module.gamma.weight.any()


@pytest.mark.parametrize("kwargs", [{}, {"logits": "cosine", "layer_norm": True}])
def test_instance_fusion_records_entropy_and_logit_spread_in_training(kwargs):
    module = randomise(InstanceFusion(8, 2, 8, embed_freqs=2, chunk_size=2, **kwargs).double(), seed=2, std=0.4)
    feats, boxes = torch.randn(5, 8, dtype=torch.float64), random_boxes(5, seed=4)
    module.eval()
    module(feats, boxes)
    assert module.pop_statistics() == {}  # nothing recorded outside training
    module.train()
    module(feats, boxes)
    module(feats[:3], boxes[:3])
    stats = module.pop_statistics()
    with torch.no_grad():
        rows = [module.attention_weights(feats, boxes, feats, boxes), module.attention_weights(
            feats[:3], boxes[:3], feats[:3], boxes[:3])]
        logits = [w.log() for w in rows]  # log-softmax: the logits up to a per-row constant
    entropy = torch.cat([-(w * w.log()).sum(-1).flatten() for w in rows])
    spread = torch.cat([x.std(-1, correction=0).flatten() for x in logits])
    assert stats["entropy"] == pytest.approx(float(entropy.mean()), rel=1e-9)
    assert stats["logit_std"] == pytest.approx(float(spread.mean()), rel=1e-9)
    assert stats["max_entropy"] == pytest.approx((10 * math.log(5) + 6 * math.log(3)) / 16)
    assert module.pop_statistics() == {}  # read once


def test_frame_fusion_records_entropy_and_logit_spread_in_training():
    module = randomise(FrameFusion(3, chunk_size=2).double(), seed=6, std=0.4)
    feats = torch.randn(3, 3, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    module.train()
    module(feats[:1], module.memory(feats[1:]))
    stats = module.pop_statistics()
    with torch.no_grad():
        weights = module.attention_weights(torch.cat([feats[1:], feats[:1]]), query_frames=[2])
    entropy = -(weights * weights.log()).sum(-1)
    spread = weights.log().std(-1, correction=0)
    assert stats["entropy"] == pytest.approx(float(entropy.mean()), rel=1e-9)
    assert stats["logit_std"] == pytest.approx(float(spread.mean()), rel=1e-9)
    assert stats["max_entropy"] == pytest.approx(math.log(9))


def test_geometric_embedding_matches_reference():
    module = InstanceFusion(8, 2, 8, embed_freqs=3).double()
    query_boxes, key_boxes = random_boxes(3, seed=1), random_boxes(5, seed=2)
    emb = module.geometric_embedding(query_boxes, key_boxes)
    assert emb.shape == (3, 5, 3 * 2 * 3)
    for k in range(3):
        for l in range(5):
            expected = reference_pair_embedding(query_boxes[k].tolist(), key_boxes[l].tolist(), 3, module.eps)
            assert (emb[k, l] - torch.tensor(expected, dtype=torch.float64)).abs().max() < TOL


def test_instance_fusion_attend_with_cached_keys():
    module = randomise(InstanceFusion(16, 4, 8).double())
    feats, boxes = torch.randn(10, 16, dtype=torch.float64), random_boxes(10)
    index = torch.tensor([7, 2, 3])
    with torch.no_grad():
        full = module(feats, boxes)
        keys, values = module.project_keys(feats)
        assert keys.shape == (4, 10, 2) and values.shape == (10, 16)
        picked = module(feats, boxes, query_index=index)
        assert torch.allclose(picked, full[index], rtol=0, atol=1e-12)
        assert torch.allclose(module.attend(feats[index], boxes[index], keys, values, boxes), picked, rtol=0, atol=1e-12)
        mask = torch.zeros(10, dtype=torch.bool)
        mask[index] = True
        assert torch.allclose(module(feats, boxes, query_index=mask), full[mask], rtol=0, atol=1e-12)


def test_instance_fusion_is_identity_at_init():
    module = InstanceFusion(32, 4, 16)
    feats, boxes = torch.randn(12, 32), random_boxes(12).float()
    assert torch.equal(module(feats, boxes), feats)
    assert torch.equal(module(feats, boxes, query_index=torch.tensor([0, 5])), feats[[0, 5]])


@pytest.mark.parametrize("geometry", [True, False])
def test_instance_fusion_gradients(geometry):
    module = InstanceFusion(16, 4, 8, geometry=geometry)
    assert (module.psi is not None) == geometry
    feats, boxes = torch.randn(9, 16), random_boxes(9).float()
    weights = torch.randn(9, 16)
    (module(feats, boxes) * weights).sum().backward()
    assert module.gamma.weight.grad.abs().sum() > 0  # training can start from the zero init
    module.zero_grad()
    randomise(module)
    (module(feats, boxes) * weights).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_instance_fusion_invariant_to_box_translation():
    """Eq. 7 only sees widths, heights and aspect ratios, so shifting every box changes nothing (up to the float64
    rounding of the shifted widths, which moves the geometric logits by ~1e-12 in the direct form too)."""
    module = randomise(InstanceFusion(16, 4, 8).double())
    generator = torch.Generator().manual_seed(4)
    feats, boxes = torch.randn(8, 16, dtype=torch.float64, generator=generator), random_boxes(8)
    shifted = boxes + torch.tensor([37.5, -12.25, 37.5, -12.25], dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(module(feats, shifted), module(feats, boxes), rtol=0, atol=1e-10)
        assert torch.allclose(
            module.geometric_embedding(shifted, shifted), module.geometric_embedding(boxes, boxes), rtol=0, atol=1e-9
        )


def test_instance_fusion_query_chunks_equal_one_pass():
    torch.manual_seed(0)
    fusion = InstanceFusion(dim=16, num_heads=4, key_dim=8, chunk_size=0).double()
    torch.nn.init.normal_(fusion.gamma.weight)
    feats = torch.randn(23, 16, dtype=torch.float64)
    xy = torch.rand(23, 2, dtype=torch.float64) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(23, 2, dtype=torch.float64) * 30], 1)
    whole = fusion(feats, boxes)
    fusion.chunk_size = 5
    assert torch.allclose(fusion(feats, boxes), whole, atol=1e-12)


# ---------------------------------------------------------------- key blocks and the geometric term in float32


@pytest.mark.parametrize("splits", [[7], [3, 4], [1, 2, 4]])
def test_blockwise_attention_equals_one_softmax(splits):
    generator = torch.Generator().manual_seed(len(splits))
    queries = torch.randn(5, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    keys = torch.randn(7, 6, dtype=torch.float64, generator=generator) * 3
    values = torch.randn(7, 4, dtype=torch.float64, generator=generator)
    out = blockwise_attention(queries, list(zip(keys.split(splits), values.split(splits))))
    expected = torch.softmax(queries @ keys.T, dim=-1) @ values
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    weights = torch.randn(5, 4, dtype=torch.float64, generator=generator)
    (grad,) = torch.autograd.grad((out * weights).sum(), queries)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), queries)
    assert torch.allclose(grad, expected_grad, rtol=0, atol=1e-12)


def test_geometric_logits_in_float32_match_float64_for_image_sized_boxes():
    """The angle-difference form multiplies sines of phases up to 100·log(width) ≈ 700: still float32-accurate."""
    module = randomise(InstanceFusion(8, 4, 8), std=0.3)
    generator = torch.Generator().manual_seed(3)
    xy = torch.rand(40, 2, generator=generator) * 500
    boxes = torch.cat([xy, xy + 2 + torch.rand(40, 2, generator=generator) * 1000], dim=1)
    with torch.no_grad():
        single = torch.zeros(4, 40, 40)
        module.box_pairs(boxes, boxes).add_to(single, module.psi.weight, slice(0, 40))
        double = module.psi.double()(module.double().geometric_embedding(boxes.double(), boxes.double()))
    assert (single.double() - double.permute(2, 0, 1)).abs().max() < 5e-4 * double.abs().max()  # direct form: 1.6e-4


def test_box_pairs_kept_for_a_second_stage_give_the_same_logits():
    """Two fusion stages sharing one ``box_pairs(keep=True)`` (the cached test frame) equal separate ones."""
    first, second = (randomise(InstanceFusion(16, 4, 8, chunk_size=3).double(), seed=seed) for seed in (1, 2))
    feats, boxes = torch.randn(7, 16, dtype=torch.float64), random_boxes(7)
    keys_boxes = random_boxes(11, seed=5)
    keys1, values1 = first.project_keys(torch.randn(11, 16, dtype=torch.float64))
    keys2, values2 = second.project_keys(torch.randn(11, 16, dtype=torch.float64))
    with torch.no_grad():
        pairs = first.box_pairs(boxes, keys_boxes, keep=True)
        shared = [stage.attend(feats, boxes, keys, values, keys_boxes, pairs)
                  for stage, keys, values in ((first, keys1, values1), (second, keys2, values2))]
        alone = [stage.attend(feats, boxes, keys, values, keys_boxes)
                 for stage, keys, values in ((first, keys1, values1), (second, keys2, values2))]
    assert len(pairs._aspect_embeddings) == 3  # chunks of 3 + 3 + 1 queries, computed once
    for a, b in zip(shared, alone):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_memory_without_a_frame_equals_fusion_without_that_frame():
    module = randomise(FrameFusion(4).double())
    feats = torch.randn(4, 4, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        memory = module.memory(feats[1:])  # support frames 1, 2, 3
        assert memory.keys.shape == memory.values.shape == (3 * 4, 3 * 5)
        excluded = module(feats[:1], memory, exclude=1)  # frame 2 left out
        expected = module(feats[[0, 1, 3]], query_frames=[0])
        # a memory of frames 1 and 3 alone gives the same bits: what makes cached equal exact
        alone = module(feats[:1], module.memory(feats[[1, 3]]))
    assert torch.allclose(excluded, expected, rtol=0, atol=1e-12)
    assert torch.equal(excluded, alone)
    with pytest.raises(ValueError, match="support frame 3 is not in a memory of 3 frames"):
        module(feats[:1], memory, exclude=3)
