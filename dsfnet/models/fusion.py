"""The two semantic fusion modules of DSFNet (DESIGN §2.1, §2.2; paper eq. 1-7).

Both are residual attention blocks whose value projection (θ, γ) starts at zero, so a freshly built module is
the identity and a freshly built DSFNet equals the single-frame baseline. Each owns the form of its *memory*:
what a set of support frames contributes as keys and values (:class:`FrameMemory`, :class:`InstanceMemory`),
projected once per video, so that every test frame only pays for its own queries. Calling a module,
``fusion(queries, memory, exclude=frame)``, attends over the memory without one of its frames and over the
queries' own keys (without a memory: among the queries alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from dsfnet.models.support import FrameRows, concat_into, gather_rows

__all__ = ["FrameFusion", "FrameMemory", "InstanceFusion", "InstanceMemory", "KeyBlock", "attention_statistics",
           "blockwise_attention", "same_channel_attention", "same_channel_logits"]

#: ``(keys [N, L], values [N, V])``: one block of an attention's keys and values.
KeyBlock = tuple[Tensor, Tensor]


def _softmax_precision(logits: Tensor) -> Tensor:
    """Logits for a softmax: float32 when a bf16/fp16 autocast produced them (exp and sums over thousands of
    keys lose too much in 8 bits of mantissa); other dtypes as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _in_chunks(total: int, step: int, compute) -> Tensor:
    """``cat([compute(rows) for rows in slices of step rows])`` (``step`` 0 = one slice), written into one tensor
    allocated after the first chunk; ``compute(slice(0, 0))`` when ``total`` is 0.

    Collecting the chunks' small results while each chunk allocates and frees tens of megabytes of logits
    fragments glibc's heap (freed logit buffers get split by the small results, so the next chunk's logits no
    longer fit and the heap grows: +1.2 GB for a 21-frame support set); one preallocated output avoids it.
    """
    step = step if step > 0 else max(total, 1)
    first = compute(slice(0, min(step, total)))
    if total <= step:
        return first
    out = first.new_empty((total, *first.shape[1:]))
    out[:step] = first
    for start in range(step, total, step):
        out[start : start + step] = compute(slice(start, start + step))
    return out


def blockwise_attention(queries: Tensor, blocks: Sequence[KeyBlock], statistics: Optional[Tensor] = None) -> Tensor:
    """``softmax(queries @ K.T) @ V`` with K, V the concatenation of the blocks, without concatenating them.

    Args:
        queries: ``[c, L]`` (already scaled).
        blocks: key blocks ``[N_b, L]`` and value blocks ``[N_b, V]`` (e.g. each memory frame's tokens as they
            are, and the query frame's own). The same blocks in the same order give the same result bit for bit,
            which is what makes ``cached`` equal ``exact`` for frame fusion.
        statistics: float64 sums ``[4]`` to add this attention's entropy, log(keys), logit standard deviation
            and row count to (see :func:`attention_statistics`); ``None``: not measured.
    Returns:
        ``[c, V]``. The row maximum subtracted before ``exp`` is detached: the softmax does not depend on it,
        so gradients are unchanged.
    """
    weights, total = _softmax_numerators([_softmax_precision(queries @ keys.T) for keys, _ in blocks], statistics)
    return sum(weight @ values for weight, (_, values) in zip(weights, blocks)) / total


def _softmax_numerators(logits: list[Tensor], statistics: Optional[Tensor]) -> tuple[list[Tensor], Tensor]:
    """One softmax's logits in blocks (``[c, N_b]`` each, overwritten) as ``exp(logit − row maximum)`` and their
    row sums ``[c, 1]``; the attention's statistics added to ``statistics`` unless ``None``.

    The row maximum is detached: the softmax does not depend on it, so gradients are unchanged.
    """
    top = torch.stack([block.amax(dim=-1) for block in logits]).amax(dim=0).detach()[:, None]  # [c, 1]
    # Clamped at -80 before exp: keys that far below the best get e^-80 instead of a denormal weight (which
    # makes exp several times slower on x86); the difference to the exact softmax is below 1e-34 per key.
    # In place, as the products' backward does not need their outputs.
    weights = [block.sub_(top).clamp_(min=-80.0).exp_() for block in logits]
    total = sum(weight.sum(dim=-1, keepdim=True) for weight in weights)
    if statistics is not None:
        _add_block_statistics(statistics, weights, total)
    return weights, total


@torch.no_grad()
def _add_block_statistics(statistics: Tensor, weights: Sequence[Tensor], total: Tensor) -> None:
    """Entropy and logit spread of a blockwise softmax from its weights ``exp(logit - top)`` (``[c, N_b]`` each)
    and their row sums ``[c, 1]``: log-weights are the shifted logits, so H = log(total) - Σ w·log(w) / total."""
    log_weights = [weight.log() for weight in weights]
    keys = sum(weight.shape[-1] for weight in weights)
    rows = total.shape[0]
    if rows == 0 or keys == 0:
        return
    weighted = sum((weight * log).sum(-1, keepdim=True) for weight, log in zip(weights, log_weights))
    entropy = (total.log() - weighted / total).sum()
    mean = sum(log.sum(-1) for log in log_weights) / keys  # [c]
    variance = sum(log.pow(2).sum(-1) for log in log_weights) / keys - mean.pow(2)
    statistics += _statistics_row(entropy, rows * math.log(keys), variance.clamp_min(0).sqrt().sum(), rows)


def same_channel_logits(queries: Tensor, keys: Tensor, channels: int) -> Tensor:
    """Each query token's dot product with the same channel's token of every key frame: ``[q·d, k]`` from queries
    ``[q·d, L]`` and keys ``[k·d, L]`` (frame-major: token f·d + c is channel c of frame f; d = ``channels``)."""
    length = queries.shape[-1]
    logits = torch.einsum("qcl,kcl->qck", queries.view(-1, channels, length), keys.view(-1, channels, length))
    return _softmax_precision(logits).flatten(0, 1)


def same_channel_attention(queries: Tensor, blocks: Sequence[KeyBlock], channels: int,
                           statistics: Optional[Tensor] = None) -> Tensor:
    """:func:`blockwise_attention` with each query token's softmax over the same channel of the k key frames only.

    Args:
        queries: ``[q·d, L]`` (already scaled), frame-major.
        blocks: key blocks ``[N_b, L]`` and value blocks ``[N_b, V]`` of whole frames (N_b a multiple of d),
            frame-major.
        channels: d.
        statistics: as in :func:`blockwise_attention` (log(keys) is then log k).
    Returns:
        ``[q·d, V]``.
    """
    keys = torch.cat([block_keys for block_keys, _ in blocks])
    values = torch.cat([block_values for _, block_values in blocks])
    logits = same_channel_logits(queries, keys, channels)  # [q·d, k]
    (weights,), total = _softmax_numerators([logits], statistics)
    weights = (weights / total).to(values.dtype).view(-1, channels, weights.shape[-1])  # [q, d, k]
    return torch.einsum("qck,kcv->qcv", weights, values.view(-1, channels, values.shape[-1])).flatten(0, 1)


def _statistics_row(entropy: Tensor, max_entropy: float, spread: Tensor, rows: int) -> Tensor:
    """``[4]`` float64 sums: entropy, log(keys), logit standard deviation, rows, on the attention's device (read
    on the CPU they would stop the forward pass on a GPU until every queued kernel has run, at each chunk)."""
    return torch.stack([entropy.double(), entropy.new_tensor(max_entropy, dtype=torch.float64), spread.double(),
                        entropy.new_tensor(rows, dtype=torch.float64)])


def attention_statistics(sums: Tensor) -> dict[str, float]:
    """Read and zero sums ``[4]`` recorded in training: the attention's mean ``entropy`` (nats), ``max_entropy``
    (the mean log(keys), which a uniform attention has), ``logit_std`` (a query's logits over its keys,
    averaged over queries); empty when nothing was recorded."""
    entropy, max_entropy, spread, rows = sums.tolist()
    sums.zero_()
    if not rows:
        return {}
    return {"entropy": entropy / rows, "max_entropy": max_entropy / rows, "logit_std": spread / rows}


@dataclass
class FrameMemory:
    """Frame-fusion keys and values of s support frames: φ and θ tokens ``[s·d, h·w]``, frame-major (``rows``)."""

    keys: Tensor
    values: Tensor
    rows: FrameRows

    def blocks(self, exclude: Optional[int] = None) -> list[KeyBlock]:
        """One ``(keys, values)`` block per frame (views, nothing copied), without frame ``exclude``."""
        return [(self.keys[rows], self.values[rows]) for rows in self.rows.per_frame(exclude)]

    def frame(self, index: int) -> "FrameMemory":
        """A one-frame memory of frame ``index``'s tokens (views, nothing copied)."""
        rows = self.rows.frame(index)
        return FrameMemory(self.keys[rows], self.values[rows], FrameRows.of_counts([rows.stop - rows.start]))

    @classmethod
    def join(cls, memories: Sequence["FrameMemory"], into: Optional["FrameMemory"] = None) -> "FrameMemory":
        """The frames of several memories in order, as one memory (a causal memory's frames, each kept alone),
        written into the storage of ``into`` where it is large enough (see :func:`concat_into`)."""
        return cls(concat_into([memory.keys for memory in memories], 0, into.keys if into else None),
                   concat_into([memory.values for memory in memories], 0, into.values if into else None),
                   FrameRows.join([memory.rows for memory in memories]))


class FrameFusion(nn.Module):
    """Frame-level semantic fusion, eq. 1-3: channel tokens of n frames attend to all n·d channel tokens.

    A token is one channel of one frame's conv4 map, flattened to a vector of length h·w::

        F_e[i] = F_c[i] + Σ_j S[i, j] · θ(F_c)[j]
        S[i, :] = softmax_j(<ϕ(F_c)[i], φ(F_c)[j]> / sqrt(h·w))

    ϕ (``phi``), φ (``varphi``) and θ (``theta``) are 1×1 convolutions d→d shared by all frames, so the token
    count is n·d whatever the image size. θ is zero-initialised (weight and bias; see ``value_init``). In training
    mode every call records the attention's entropy and logit spread (:meth:`pop_statistics`).

    Args:
        channels: d, the conv4 channel count.
        scale_by_sqrt_hw: divide the logits by sqrt(h·w) (a decision for numerical stability, DESIGN §2.1).
        chunk_size: if > 0, at most this many query tokens are scored at once, so no more than
            ``chunk_size × n·d`` logits exist at a time; 0 scores all queries at once.
        normalize_tokens: rescale every ϕ and φ token to unit root-mean-square before the dot product, so that
            with ``scale_by_sqrt_hw`` a logit is sqrt(h·w)·cos(ϕ_i, φ_j) whatever the features' magnitude
            (not in the paper: the 1/sqrt(h·w) scale assumes unit-scale entries, and ImageNet features of
            root-mean-square 5-15 make the softmax one-hot; docs/results.md, "Ablation with the light backbone").
        identity_projections: ϕ and φ start as the identity (weights eye, biases zero) instead of PyTorch's random
            initialisation, so that a channel's query first matches the same channel of every frame best (the
            paper states no initialisation). With random ϕ, φ the attention starts unrelated to channels; as θ
            starts at zero, ϕ and φ get no gradient until θ has grown, and a near-uniform attention adds the same
            map to every channel.
        value_init: θ starts as this multiple of the identity (weights ``value_init·I``, bias zero) instead of
            zero. At 0 (the design's) a freshly built model equals the baseline; otherwise it starts by adding
            ``value_init`` times the attention-weighted mixture of the frames' maps (not in the paper).
        subtract_own_value: eq. 1 becomes ``F_e = F_c + S·θ(F_c) − θ(F_c)`` (each query token less its own value,
            not in the paper): the fusion then moves a map *towards* the mixture of the frames instead of adding the
            mixture to it, so that with identity ϕ, φ and θ = w·I it is ``F_c + w·(S·F_c − F_c)``, the form of a
            same-position average that keeps the maps' scale. θ = 0 still makes it the identity.
        same_channel: each query token's softmax runs over the same channel of the n frames only (n keys instead
            of eq. 2's n·d; not in the paper): S[i, j] is zero unless tokens i and j are one channel, so that the
            attention weighs frames, never channels (θ can still mix channels).
    """

    def __init__(self, channels: int, scale_by_sqrt_hw: bool = True, chunk_size: int = 0,
                 normalize_tokens: bool = False, identity_projections: bool = False, value_init: float = 0.0,
                 subtract_own_value: bool = False, same_channel: bool = False):
        super().__init__()
        self.scale_by_sqrt_hw = scale_by_sqrt_hw
        self.subtract_own_value = subtract_own_value
        self.same_channel = same_channel
        self.chunk_size = chunk_size
        self.normalize_tokens = normalize_tokens
        self.phi = nn.Conv2d(channels, channels, 1)
        self.varphi = nn.Conv2d(channels, channels, 1)
        self.theta = nn.Conv2d(channels, channels, 1)
        if identity_projections:
            for projection in (self.phi, self.varphi):
                nn.init.dirac_(projection.weight)
                nn.init.zeros_(projection.bias)
        nn.init.dirac_(self.theta.weight)
        with torch.no_grad():
            self.theta.weight.mul_(value_init)
        nn.init.zeros_(self.theta.bias)
        self._statistics = torch.zeros(4, dtype=torch.float64)  # sums, see attention_statistics

    def pop_statistics(self) -> dict[str, float]:
        """The attention recorded in training since the last call (:func:`attention_statistics`), and where θ
        stands then: ``value_diagonal``, the mean of its diagonal (what a same-channel mixture of the frames
        needs), and ``value_norm``, its Frobenius norm (0 at the design's start)."""
        statistics = attention_statistics(self._statistics)
        if statistics:
            weight = self.theta.weight.detach()[:, :, 0, 0]
            statistics.update(value_diagonal=weight.diagonal().mean().item(), value_norm=weight.norm().item())
        return statistics

    def keys_values(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        """Project the frames that serve as keys/values.

        Args:
            feats: ``[n, d, h, w]`` raw conv4 maps of all n frames.
        Returns:
            ``(keys, values)``, each ``[n·d, h·w]``: φ tokens (normalised if configured) and θ tokens,
            frame-major (token f·d + c is channel c of frame f).
        """
        keys = self.varphi(feats).flatten(0, 1).flatten(1)
        return self._normalized(keys), self.theta(feats).flatten(0, 1).flatten(1)

    def _normalized(self, tokens: Tensor) -> Tensor:
        """``tokens [t, h·w]`` at unit root-mean-square each if ``normalize_tokens``, else as they are."""
        if not self.normalize_tokens:
            return tokens
        # the epsilon only guards a constant-zero token (its logits are then 0); real tokens have rms >> 1e-3
        return tokens * torch.rsqrt(tokens.pow(2).mean(dim=-1, keepdim=True) + 1e-6)

    def memory(self, feats: Tensor) -> FrameMemory:
        """The keys and values of support frames (raw conv4 ``[s, d, h, w]``), projected one frame at a time:
        a frame's tokens are then the same bits whichever other frames it is stored with."""
        frames, channels, height, width = feats.shape
        no_tokens = (feats.new_zeros(0, height * width),) * 2
        tokens = [self.keys_values(feats[i : i + 1]) for i in range(frames)] or [no_tokens]
        keys, values = (torch.cat(parts) for parts in zip(*tokens))
        return FrameMemory(keys, values, FrameRows.of_counts([channels] * frames))

    def forward(self, feats: Tensor, memory: Optional[FrameMemory] = None, *, exclude: Optional[int] = None,
                own: Optional[FrameMemory] = None, query_frames: Optional[Sequence[int] | Tensor] = None) -> Tensor:
        """Enhance query frames with attention over a memory's frames (but ``exclude``) and their own tokens.

        Args:
            feats: ``[q, d, h, w]`` raw conv4 maps of the frames to enhance; their own tokens are keys too.
            memory: support frames' tokens from :meth:`memory` (``None``: the frames attend among themselves).
            exclude: a memory frame to leave out (a test frame that is itself one of the memory's frames).
            own: the frames' own tokens, ``memory(feats)``, when the caller keeps them (a test frame that becomes a
                support frame of later ones): they are then projected once.
            query_frames: indices of the frames of ``feats`` to enhance (sequence or 1-D tensor; keys and values
                still come from all of them); ``None`` = all frames. Only ``len(query_frames)·d`` query tokens are
                scored.
        Returns:
            ``[q, d, h, w]`` (or ``[len(query_frames), d, h, w]`` in the order given): ``F_c + S @ θ`` for the
            query tokens, one softmax over all keys (less ``θ(F_c)`` with ``subtract_own_value``).
        """
        return self._enhance(self.query_feats(feats, query_frames), self._key_blocks(feats, memory, exclude, own))

    @staticmethod
    def query_feats(feats: Tensor, query_frames: Optional[Sequence[int] | Tensor] = None) -> Tensor:
        """The frames of ``feats [q, d, h, w]`` that a :meth:`forward` call with ``query_frames`` enhances, in the
        order of its output (all of them for ``None``)."""
        if query_frames is None:
            return feats
        return feats[torch.as_tensor(query_frames, dtype=torch.long, device=feats.device)]

    def _key_blocks(self, feats: Tensor, memory: Optional[FrameMemory], exclude: Optional[int],
                    own: Optional[FrameMemory]) -> list[KeyBlock]:
        """The keys and values of a :meth:`forward` call: the memory's frames (but ``exclude``), then the frames'
        own tokens."""
        blocks = [] if memory is None else memory.blocks(exclude)
        return blocks + [self.keys_values(feats) if own is None else (own.keys, own.values)]

    def _queries(self, query_feats: Tensor) -> Tensor:
        """ϕ tokens ``[q·d, h·w]`` of the query frames ``[q, d, h, w]`` (normalised and) divided by sqrt(h·w) as
        configured."""
        queries = self._normalized(self.phi(query_feats).flatten(0, 1).flatten(1))
        if self.scale_by_sqrt_hw:
            # Scaling the queries rather than the logits touches q·d·h·w numbers instead of q·d·n·d.
            queries = queries / math.sqrt(query_feats.shape[-2] * query_feats.shape[-1])
        return queries

    def attention_weights(self, feats: Tensor, memory: Optional[FrameMemory] = None, *,
                          exclude: Optional[int] = None, own: Optional[FrameMemory] = None,
                          query_frames: Optional[Sequence[int] | Tensor] = None) -> Tensor:
        """S of eq. 2 for the same inputs as :meth:`forward` (for inspecting a model; forward never builds it whole).

        Returns:
            ``[q·d, k·d]``: row f·d + c is channel c of the f-th query frame; the columns are the keys in
            :meth:`forward`'s order, the memory's frames (but ``exclude``) then ``feats``' frames, column g·d + c'
            channel c' of the g-th of them; rows sum to 1 (with ``same_channel`` only columns with c' = c are
            non-zero).
        """
        keys = torch.cat([block_keys for block_keys, _ in self._key_blocks(feats, memory, exclude, own)])
        queries = self._queries(self.query_feats(feats, query_frames))
        if not self.same_channel:
            return torch.softmax(_softmax_precision(queries @ keys.T), dim=-1)
        channels = feats.shape[1]
        weights = torch.softmax(same_channel_logits(queries, keys, channels), dim=-1)
        weights = weights.view(-1, channels, weights.shape[-1])  # [q, d, k]
        dense = weights.new_zeros(len(weights), channels, weights.shape[-1], channels)  # [q, d, k, d]
        index = torch.arange(channels, device=weights.device)
        dense[:, index, :, index] = weights.permute(1, 0, 2)  # channel c of every key frame, for query channel c
        return dense.flatten(0, 1).flatten(1)

    def _enhance(self, query_feats: Tensor, blocks: Sequence[KeyBlock]) -> Tensor:
        """``F_c + softmax(ϕ(F_c) K^T / sqrt(h·w)) V`` over key blocks (with ``same_channel`` each token's softmax
        over its own channel's keys only), less ``θ(F_c)`` with ``subtract_own_value`` (``[q, d, h, w]`` ->
        ``[q, d, h, w]``)."""
        q, d, h, w = query_feats.shape
        queries = self._queries(query_feats)
        if self.training:
            self._statistics = self._statistics.to(queries.device)
        statistics = self._statistics if self.training else None
        if self.same_channel:  # q·d·n logits, never many: no chunks
            fused = same_channel_attention(queries, blocks, d, statistics)  # [q·d, h·w]
        else:
            fused = _in_chunks(len(queries), self.chunk_size,
                               lambda rows: blockwise_attention(queries[rows], blocks, statistics))
        enhanced = query_feats + fused.view(q, d, h, w)
        return enhanced - self.theta(query_feats) if self.subtract_own_value else enhanced


@dataclass
class InstanceMemory:
    """One instance fusion's keys ``[H, M, d_k]`` and values ``[M, dim]`` of M support instances, their boxes
    ``[M, 4]`` and which rows belong to which support frame."""

    keys: Tensor
    values: Tensor
    boxes: Tensor
    rows: FrameRows

    def key_boxes(self, own_boxes: Tensor, exclude: Optional[int] = None) -> Tensor:
        """Boxes of all keys a query attends to: the memory's (without frame ``exclude``), then its own."""
        return gather_rows(self.boxes, self.rows, exclude, own_boxes)

    def head(self, count: int) -> "InstanceMemory":
        """A one-frame memory of the first ``count`` instances (a test frame's top proposals, copied so that the
        rest can be freed)."""
        count = min(count, len(self.boxes))
        return InstanceMemory(self.keys[:, :count].clone(), self.values[:count].clone(), self.boxes[:count].clone(),
                              FrameRows.of_counts([count]))

    def frame(self, index: int) -> "InstanceMemory":
        """A one-frame memory of frame ``index``'s instances (views, nothing copied)."""
        rows = self.rows.frame(index)
        return InstanceMemory(self.keys[:, rows], self.values[rows], self.boxes[rows],
                              FrameRows.of_counts([rows.stop - rows.start]))

    @classmethod
    def join(cls, memories: Sequence["InstanceMemory"], into: Optional["InstanceMemory"] = None) -> "InstanceMemory":
        """The frames of several memories in order, as one memory, written into the storage of ``into`` where it
        is large enough (see :func:`concat_into`)."""
        def joined(field: str, dim: int = 0) -> Tensor:
            return concat_into([getattr(memory, field) for memory in memories], dim,
                               getattr(into, field) if into else None)

        # keys [H, M, d_k]: instances on dim 1
        return cls(joined("keys", dim=1), joined("values"), joined("boxes"),
                   FrameRows.join([memory.rows for memory in memories]))


class InstanceFusion(nn.Module):
    """Instance-level semantic fusion, eq. 4-7: multi-head relation attention over all proposals of all frames.

    For query instance k and key instance l, per head::

        Q_e[k] = Q[k] + Σ_l S[k, l] · γ(Q)[l]
        S[k, :] = softmax_l(z[k, l] + r[k, l])
        z[k, l] = <ξ(Q[k]), ζ(Q[l])> / sqrt(d_k)                                      d_k = key_dim / H
        r[k, l] = ψ(ϱ(log(w_k/w_l), log(h_k/h_l), log(|w_k/h_k − w_l/h_l| + eps)))

    ξ (``xi``) and ζ (``zeta``) map dim → key_dim, split into H heads of d_k. γ (``gamma``) maps dim → dim; its
    output channels ``[h·dim/H, (h+1)·dim/H)`` are head h's values ("grouped per head") and it is zero-initialised.
    ψ (``psi``) maps the 3·2·embed_freqs geometric embedding to one logit per head; r is added to the logits
    as is (no ReLU/log, eq. 5). ``geometry=False`` drops r and ψ.

    ζ and ψ have no bias: a bias there adds a constant to every logit of a query row, which the softmax
    cancels, so it would be a parameter that never receives a gradient.

    Bounding the attention's sharpness (not in the paper; all off by default, i.e. eq. 6 as written):
    ``layer_norm`` normalises the features that ξ and ζ read (γ still reads the raw features);
    ``logits="cosine"`` replaces z by ``s · cos(ξQ_k, ζQ_l)`` per head with a learned scale s (initialised to 10 and
    capped at 100, as Swin Transformer V2's cosine attention); ``init_std > 0`` draws ξ's and ζ's weights from
    N(0, init_std) as Relation Networks and SELSA do.

    In training mode every call records the attention's entropy and logit spread (:meth:`pop_statistics`).

    Box widths and heights are ``x2 − x1`` and ``y2 − y1`` clamped to ≥ 1e-3: proposals are continuous boxes
    (no +1 pixel convention) and the clamp keeps the logs finite for degenerate ones.
    """

    def __init__(
        self,
        dim: int = 1024,
        num_heads: int = 16,
        key_dim: int = 1024,
        geometry: bool = True,
        embed_freqs: int = 8,
        eps: float = 1e-3,
        chunk_size: int = 1024,
        *,
        logits: str = "dot",
        layer_norm: bool = False,
        init_std: float = 0.0,
    ):
        super().__init__()
        self.chunk_size = chunk_size
        if dim % num_heads or key_dim % num_heads:
            raise ValueError(f"dim ({dim}) and key_dim ({key_dim}) must be divisible by num_heads ({num_heads})")
        if logits not in ("dot", "cosine"):
            raise ValueError(f"logits must be 'dot' or 'cosine', got {logits!r}")
        self.num_heads = num_heads
        self.embed_freqs = embed_freqs
        self.eps = eps
        self.norm = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.xi = nn.Linear(dim, key_dim)
        self.zeta = nn.Linear(dim, key_dim, bias=False)
        if init_std > 0:
            nn.init.normal_(self.xi.weight, std=init_std)
            nn.init.zeros_(self.xi.bias)
            nn.init.normal_(self.zeta.weight, std=init_std)
        # cosine logits: log of the learned scale s, capped at log(100) when used
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0))) if logits == "cosine" else None
        self.gamma = nn.Linear(dim, dim)
        nn.init.zeros_(self.gamma.weight)
        nn.init.zeros_(self.gamma.bias)
        self.psi = nn.Linear(3 * 2 * embed_freqs, num_heads, bias=False) if geometry else None
        self._statistics = torch.zeros(4, dtype=torch.float64)  # sums: entropy, log(keys), logit std, rows

    def memory(self, feats: Tensor, boxes: Tensor, rows: FrameRows) -> InstanceMemory:
        """Support instances (``[M, dim]``, boxes ``[M, 4]``, frame-major ``rows``) projected as keys once."""
        keys, values = self.project_keys(feats)
        return InstanceMemory(keys, values, boxes, rows)

    def forward(self, feats: Tensor, boxes: Tensor, memory: Optional[InstanceMemory] = None, *,
                exclude: Optional[int] = None, query_index: Optional[Tensor] = None,
                pairs: Optional["BoxPairs"] = None, own: Optional[InstanceMemory] = None,
                num_keys: Optional[int] = None) -> Tensor:
        """Enhance instances with attention over a memory's instances (but frame ``exclude``'s) and their own.

        Args:
            feats, boxes: ``[m, dim]`` RoI features of the query frames' instances and their boxes; the first
                ``num_keys`` of them (``None``: all) are keys.
            memory: support instances from :meth:`memory` (``None``: the instances attend among themselves).
            query_index: the instances to enhance (indices or boolean mask; ``None`` = all).
            pairs: :meth:`box_pairs` of the queries against all keys, shared with another stage.
            own: ``memory(feats, boxes, ...)`` when the caller keeps it (a test frame that becomes a support
                frame of later ones): the instances' own keys are then projected once.
            num_keys: in training, the rows after the first ``num_keys`` are the key frame's sampled RoIs (which
                include ground-truth boxes): queries whose losses are taken, never keys (DESIGN §2.2).
        Returns:
            ``[m, dim]``, or ``[q, dim]`` for ``feats[query_index]``.
        """
        key_feats, key_boxes = (feats, boxes) if num_keys is None else (feats[:num_keys], boxes[:num_keys])
        keys, values = self.project_keys(key_feats) if own is None else (own.keys, own.values)
        if memory is not None:
            keys = gather_rows(memory.keys, memory.rows, exclude, keys, dim=1)  # [H, M', d_k]: instances on dim 1
            values = gather_rows(memory.values, memory.rows, exclude, values)
            key_boxes = memory.key_boxes(key_boxes, exclude)
        if query_index is not None:
            feats, boxes = feats[query_index], boxes[query_index]
        return self.attend(feats, boxes, keys, values, key_boxes, pairs)

    def project_keys(self, key_feats: Tensor) -> tuple[Tensor, Tensor]:
        """Project the key instances once (e.g. a video's cached support proposals).

        Args:
            key_feats: ``[m, dim]``.
        Returns:
            ``(keys [H, m, key_dim/H], values [m, dim])``: ζ split per head and γ (head h owns channel slice h).
        """
        keys = self._per_head(self.zeta(self.norm(key_feats)))
        return keys, self.gamma(key_feats)

    def _per_head(self, projected: Tensor) -> Tensor:
        """``[m, key_dim]`` -> ``[H, m, d_k]``, each head's vectors at unit length for cosine logits."""
        per_head = projected.unflatten(-1, (self.num_heads, -1)).transpose(0, 1)
        return nn.functional.normalize(per_head, dim=-1) if self.log_scale is not None else per_head

    def attend(
        self, query_feats: Tensor, query_boxes: Tensor, keys: Tensor, values: Tensor, key_boxes: Tensor,
        pairs: Optional["BoxPairs"] = None,
    ) -> Tensor:
        """Enhance query instances with attention over projected keys.

        Args:
            query_feats: ``[q, dim]``.
            query_boxes: ``[q, 4]`` as ``(x1, y1, x2, y2)``; unused when ``geometry=False``.
            keys, values: ``[H, m, key_dim/H]`` and ``[m, dim]`` from :meth:`project_keys`.
            key_boxes: ``[m, 4]`` boxes of the key instances; unused when ``geometry=False``.
            pairs: :meth:`box_pairs` of these query and key boxes, to share its work with another stage;
                ``None`` = computed here.
        Returns:
            ``[q, dim]``: ``Q + concat_h(softmax_l(z + r) @ values_h)``, computed ``chunk_size`` queries at a time
            (0 = all at once) so that at most ``H x chunk_size x m`` logits exist at once.
        """
        if self.psi is not None and pairs is None:
            pairs = self.box_pairs(query_boxes, key_boxes)
        return _in_chunks(len(query_feats), self.chunk_size,
                          lambda rows: self._attend(query_feats[rows], keys, values, pairs, rows))

    def _attend(self, query_feats: Tensor, keys: Tensor, values: Tensor, pairs: Optional["BoxPairs"],
                rows: slice) -> Tensor:
        logits = self._logits(query_feats, keys, pairs, rows)
        weights = torch.softmax(logits, dim=-1)
        if self.training:
            self._record(logits, weights)
        fused = weights @ values.unflatten(-1, (self.num_heads, -1)).transpose(0, 1)
        return query_feats + fused.transpose(0, 1).flatten(1)  # [H, q, dim/H] -> [q, dim]

    @torch.no_grad()
    def _record(self, logits: Tensor, weights: Tensor) -> None:
        """Add the entropy, log(keys) and logit standard deviation of these ``[H, q, m]`` rows to the sums."""
        rows = logits.shape[0] * logits.shape[1]
        if rows == 0 or logits.shape[-1] == 0:
            return
        entropy = -(weights * torch.log_softmax(logits, dim=-1)).sum()
        spread = logits.std(dim=-1, correction=0).sum()
        self._statistics = self._statistics.to(logits.device) + _statistics_row(
            entropy, rows * math.log(logits.shape[-1]), spread, rows)

    def pop_statistics(self) -> dict[str, float]:
        """The attention recorded in training since the last call (:func:`attention_statistics`)."""
        return attention_statistics(self._statistics)

    def _logits(self, query_feats: Tensor, keys: Tensor, pairs: Optional["BoxPairs"], rows: slice) -> Tensor:
        """z + r of eq. 5, ``[H, q, m]``, for the queries ``rows`` of ``pairs``."""
        queries = self._per_head(self.xi(self.norm(query_feats)))  # [H, q, d_k]
        if self.log_scale is None:
            queries = queries / math.sqrt(queries.shape[-1])
        else:
            queries = queries * self.log_scale.clamp(max=math.log(100.0)).exp()
        logits = _softmax_precision(queries @ keys.transpose(1, 2))  # [H, q, m]
        if self.psi is not None:
            pairs.add_to(logits, self.psi.weight, rows)
        return logits

    def attention_weights(self, query_feats: Tensor, query_boxes: Tensor, key_feats: Tensor,
                          key_boxes: Tensor) -> Tensor:
        """S of eq. 5 per head, ``[H, q, m]`` (rows sum to 1), for query instances ``[q, dim]`` / ``[q, 4]`` and key
        instances ``[m, dim]`` / ``[m, 4]``: the weights :meth:`forward` applies (for inspecting a model)."""
        keys, _ = self.project_keys(key_feats)
        pairs = self.box_pairs(query_boxes, key_boxes) if self.psi is not None else None
        return torch.softmax(self._logits(query_feats, keys, pairs, slice(0, len(query_feats))), dim=-1)

    def geometric_embedding(self, query_boxes: Tensor, key_boxes: Tensor) -> Tensor:
        """ϱ of eq. 7 for every (query, key) pair, written out directly: the readable form of what
        :class:`BoxPairs` computes factorised (for inspecting a model, and the reference its tests compare to).

        Args:
            query_boxes: ``[q, 4]``; key_boxes: ``[m, 4]``, both ``(x1, y1, x2, y2)``.
        Returns:
            ``[q, m, 3·2·F]`` (F = embed_freqs): for each of the 3 scalars in the order of eq. 7, F sines then
            F cosines (the layout ``psi.weight`` columns follow).
        """
        return torch.cat([self._embed(s) for s in self._relative_geometry(query_boxes, key_boxes)], dim=-1)

    def _relative_geometry(self, query_boxes: Tensor, key_boxes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The 3 scalars of eq. 7, each ``[q, m]``: log(w_k/w_l), log(h_k/h_l), log(|w_k/h_k − w_l/h_l| + eps)."""
        qw, qh = (query_boxes[:, 2:] - query_boxes[:, :2]).clamp_min(1e-3).unbind(-1)
        kw, kh = (key_boxes[:, 2:] - key_boxes[:, :2]).clamp_min(1e-3).unbind(-1)
        aspect = ((qw / qh)[:, None] - (kw / kh)[None, :]).abs() + self.eps
        return torch.log(qw[:, None] / kw[None, :]), torch.log(qh[:, None] / kh[None, :]), torch.log(aspect)

    def _embed(self, x: Tensor) -> Tensor:
        """Relation Networks' sinusoidal embedding: ``[...]`` -> ``[..., 2F]`` = sin, cos of 100·x / 1000^(i/F)."""
        wave_lengths = 1000.0 ** (torch.arange(self.embed_freqs, dtype=x.dtype, device=x.device) / self.embed_freqs)
        phase = 100.0 * x[..., None] / wave_lengths
        return torch.cat([phase.sin(), phase.cos()], dim=-1)

    def box_pairs(self, query_boxes: Tensor, key_boxes: Tensor, keep: bool = False) -> "BoxPairs":
        """The geometry of eq. 7 for these query and key boxes (see :class:`BoxPairs`); ``keep`` memoises the
        per-pair part so that another fusion stage with the same boxes, chunk size and embedding reuses it."""
        return BoxPairs(query_boxes, key_boxes, self.embed_freqs, self.eps, keep)


class BoxPairs:
    """r = ψ(ϱ(...)) of eq. 7 for q query × m key boxes, added to attention logits chunk by chunk.

    Equal to ``psi(geometric_embedding(...))``, computed in float32 (float64 for float64 boxes) with autocast
    off: the phases reach 100·log(width) ≈ 700 radians. ψ is linear, so each scalar's 2F-wide block of ψ is a
    function of that scalar alone. The first two scalars are differences, log w_k − log w_l and
    log h_k − log h_l, so their sines and cosines split by the angle-difference identities: their part of r is
    the product of a ``[H, q, 4F]`` query factor and a ``[m, 4F]`` key factor (one batched matmul, no per-pair
    sine). Only the aspect term needs per-pair sines and cosines, written as ``[2F, c·m]`` so that ψ's block
    adds them to the logits in one matmul; with ``keep`` they are kept per chunk of rows and reused by a later
    stage (the two instance fusions of a cached test frame read the same boxes).
    """

    def __init__(self, query_boxes: Tensor, key_boxes: Tensor, embed_freqs: int, eps: float, keep: bool = False):
        self.dtype = torch.promote_types(query_boxes.dtype, torch.float32)
        self.freqs = embed_freqs
        self.keep = keep
        self._aspect_embeddings: dict[tuple[int, int], Tensor] = {}
        with torch.autocast(query_boxes.device.type, enabled=False):
            scales = 100.0 / 1000.0 ** (torch.arange(embed_freqs, dtype=self.dtype, device=query_boxes.device)
                                        / embed_freqs)  # [F]
            query_wh = (query_boxes[:, 2:] - query_boxes[:, :2]).clamp_min(1e-3).to(self.dtype)  # [q, 2]
            key_wh = (key_boxes[:, 2:] - key_boxes[:, :2]).clamp_min(1e-3).to(self.dtype)  # [m, 2]
            query_phase = query_wh.log()[:, :, None] * scales  # [q, 2, F]
            key_phase = key_wh.log()[:, :, None] * scales  # [m, 2, F]
            self.query_sin, self.query_cos = query_phase.sin(), query_phase.cos()  # [q, 2, F]
            # per axis: cos p_l then sin p_l, matching the query factor's layout below
            self.key_factor = torch.stack([key_phase.cos(), key_phase.sin()], dim=2).flatten(1)  # [m, 4F]
            self.scales = scales
            self.query_aspect = query_wh[:, 0] / query_wh[:, 1]  # [q]
            self.key_aspect = key_wh[:, 0] / key_wh[:, 1]  # [m]
            self.eps = eps

    def add_to(self, logits: Tensor, weight: Tensor, rows: slice) -> None:
        """Add r of query rows ``rows`` (a slice with a start) to ``logits [H, c, m]`` in place; ``weight`` is ψ's
        ``[H, 6F]``."""
        with torch.autocast(logits.device.type, enabled=False):
            heads, count, m = logits.shape
            freqs = self.freqs
            weight = weight.to(self.dtype)
            sizes, aspect_weight = weight[:, : 4 * freqs], weight[:, 4 * freqs :]
            sin_w = sizes.view(heads, 2, 2, freqs)[:, :, 0, None]  # [H, 2, 1, F]: axis, sines
            cos_w = sizes.view(heads, 2, 2, freqs)[:, :, 1, None]
            q_sin = self.query_sin[rows].transpose(0, 1)  # [2, c, F]
            q_cos = self.query_cos[rows].transpose(0, 1)
            # Σ_f a_f sin(p_k - p_l) + b_f cos(p_k - p_l) = Σ_f cos p_l (a_f sin p_k + b_f cos p_k)
            #                                              + sin p_l (b_f sin p_k - a_f cos p_k)
            query_factor = torch.stack([sin_w * q_sin + cos_w * q_cos, cos_w * q_sin - sin_w * q_cos], dim=2)
            query_factor = query_factor.permute(0, 3, 1, 2, 4).flatten(2)  # [H, c, 4F] = axis, (cos, sin), F
            dtype = logits.dtype
            logits.baddbmm_(query_factor.to(dtype), self.key_factor.T.to(dtype).expand(heads, -1, -1))
            logits.view(heads, count * m).addmm_(aspect_weight.to(dtype),
                                                 self._aspect_embedding(rows, count, m).to(dtype))

    def _aspect_embedding(self, rows: slice, count: int, m: int) -> Tensor:
        """Sines then cosines of the aspect term's phases, ``[2F, c·m]``."""
        key = (rows.start, count)
        if key in self._aspect_embeddings:
            return self._aspect_embeddings[key]
        aspect = (self.query_aspect[rows, None] - self.key_aspect[None, :]).abs_()
        phase = self.scales[:, None] * (aspect + self.eps).log_().view(1, count * m)  # [F, c·m]
        embedding = torch.empty(2 * self.freqs, count * m, dtype=self.dtype, device=phase.device)
        torch.sin(phase, out=embedding[: self.freqs])
        torch.cos(phase, out=embedding[self.freqs :])
        if self.keep:
            self._aspect_embeddings[key] = embedding
        return embedding
