"""Iterative (MaskGIT-style) decoding with a MAGE model, as MAGE does it (docs/method.md section 4).

Start from a grid of [MASK] (the model prepends [C0]), nothing dropped. At each of T
steps every unknown position is sampled from softmax(logits); already known tokens stay.
With r = (t + 1) / T, floor(N0 * cos(pi/2 * r)) positions stay masked for the next step
(N0 = the number unknown at the start, L when generating from nothing), clamped to
[1, #unknown - 1]; the ones re-masked are those of lowest confidence
log p(sampled) + tau * (1 - r) * Gumbel noise, known tokens having +inf. After the last
step nothing is masked: the samples of that step are the output.

The decoding study (issue 28, docs/method.md) varies what MAGE fixes: the token draw's own
temperature (MAGE and MaskGIT: 1), MaskGIT-style top-k / nucleus limits on that draw, and a
linear instead of a cosine mask schedule. Their defaults reproduce MAGE's decoding exactly,
random draws included.
"""

import math

import torch


SCHEDULES = ("cosine", "linear")


def _masked_fraction(r: float, schedule: str) -> float:
    """The fraction of the starting unknowns still masked once a fraction r of the steps is done."""
    return math.cos(math.pi / 2 * r) if schedule == "cosine" else 1.0 - r


def _next_masked(n0: torch.Tensor, unknown: torch.Tensor, t: int, steps: int, schedule: str = "cosine") -> torch.Tensor:
    """How many positions stay masked after step t: n0, unknown (B,) int64 -> (B,) int64.

    floor(n0 * cos(pi/2 * (t+1)/T)) in float64 (``schedule="linear"``: n0 * (1 - (t+1)/T)), clamped to
    [1, unknown - 1] (official order: max(1, min(unknown - 1, .))) and never above unknown (a row with
    nothing left stays done); 0 after the last step.
    """
    if t == steps - 1:
        return torch.zeros_like(unknown)
    c = _masked_fraction((t + 1) / steps, schedule)
    n = torch.floor(n0.double() * c).long()
    n = torch.maximum(torch.ones_like(n), torch.minimum(unknown - 1, n))
    return torch.minimum(n, unknown)


def cosine_schedule(L: int, T: int, schedule: str = "cosine") -> list[int]:
    """The number of masked positions after each of the T steps when decoding L tokens from nothing
    (with ``schedule="linear"``, the linear schedule's)."""
    if L < 1 or T < 1:
        raise ValueError(f"cosine_schedule needs L >= 1 and T >= 1, got L={L} and T={T}")
    n0 = unknown = torch.tensor([L])
    counts = []
    for t in range(T):
        unknown = _next_masked(n0, unknown, t, T, schedule)
        counts.append(int(unknown))
    return counts


def _gumbel(shape, generator, device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=device)
    tiny = torch.finfo(u.dtype).tiny
    return -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))


def draw_distribution(logp: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """The probabilities the tokens are drawn from: log-probabilities (..., K) -> probabilities (..., K).

    ``temperature`` divides the log-probabilities (1: the model's own distribution; towards 0: its
    most likely token); ``top_k`` > 0 keeps the k most likely tokens, ``top_p`` < 1 the smallest set
    whose probability reaches p (nucleus), both renormalised. The defaults return ``logp.exp()``.
    """
    if temperature == 1.0 and top_k == 0 and top_p >= 1.0:
        return logp.exp()
    if temperature <= 0:  # the limit: all mass on the most likely token
        return torch.nn.functional.one_hot(logp.argmax(-1), logp.shape[-1]).to(logp.dtype)
    logits = logp / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of the more likely tokens
        keep_sorted = before < top_p  # the most likely token is always kept
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


@torch.no_grad()
def iterative_decode(
    model,
    batch: int,
    steps: int = 12,
    choice_temperature: float = 4.5,
    generator: torch.Generator | None = None,
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    return_history: bool = True,
    sampling_temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    schedule: str = "cosine",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Generate ``batch`` token grids with ``steps`` decoding steps of ``model`` (a token MAGE or
    MAGE-C, read through ``model.logits_for``).

    known (B, L) ids and known_mask (B, L) bool (True = given) fix some tokens (inpainting).
    ``generator`` must live on the model's device. Runs in eval mode under no_grad on the
    model's device and restores the model's mode.

    Returns (ids (B, L) int64 in [0, K), history): history[t] (B, L) int64 on the CPU is the
    grid after step t with -1 at the positions still masked (the last one is the output);
    an empty list when ``return_history`` is False.

    ``sampling_temperature``, ``top_k``, ``top_p`` shape the token draw (:func:`draw_distribution`;
    the confidence stays the model's own log p of the drawn token); ``schedule`` is "cosine" (MAGE)
    or "linear". The defaults are MAGE's decoding.
    """
    if steps < 1 or choice_temperature < 0:
        raise ValueError(f"steps must be >= 1 and choice_temperature >= 0, got {steps} and {choice_temperature}")
    if schedule not in SCHEDULES or sampling_temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
        raise ValueError(f"schedule must be one of {SCHEDULES}, sampling_temperature >= 0, top_k >= 0 and top_p in "
                         f"(0, 1]; got {schedule!r}, {sampling_temperature}, {top_k} and {top_p}")
    device = next(model.parameters()).device
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"the generator lives on {generator.device} but the model on {device}; make it there")
    L, K, mask_id = model.cfg.num_tokens, model.cfg.codebook_size, model.mask_id
    ids = torch.full((batch, L), mask_id, dtype=torch.long, device=device)  # (B, L)
    if (known is None) != (known_mask is None):
        raise ValueError("give both `known` and `known_mask`, or neither")
    if known is not None:
        known = known.reshape(batch, L).to(device).long()
        known_mask = known_mask.reshape(batch, L).to(device).bool()
        if ((known[known_mask] < 0) | (known[known_mask] >= K)).any():
            raise ValueError(f"known token ids must lie in [0, {K})")
        ids = torch.where(known_mask, known, ids)
    n0 = (ids == mask_id).sum(1)  # (B,) unknown at the start: L when generating from nothing

    was_training = model.training
    model.eval()
    history = []
    try:
        for t in range(steps):
            unknown = ids == mask_id  # (B, L)
            logp_all = torch.log_softmax(model.logits_for(ids).float(), dim=-1)  # (B, L, K)
            probs = draw_distribution(logp_all, sampling_temperature, top_k, top_p)  # (B, L, K)
            sampled = torch.multinomial(probs.view(-1, K), 1, generator=generator).view(batch, L)
            sampled = torch.where(unknown, sampled, ids)  # known tokens stay
            r = (t + 1) / steps
            n_next = _next_masked(n0, unknown.sum(1), t, steps, schedule)  # (B,)
            if t == steps - 1:
                ids = sampled
                if return_history:
                    history.append(ids.cpu())
                break
            # log p(sampled) from log_softmax: the official log(softmax) without its underflow to log(0)
            logp = torch.gather(logp_all, 2, sampled[..., None]).squeeze(-1)  # (B, L)
            conf = logp + choice_temperature * (1 - r) * _gumbel(logp.shape, generator, device)
            conf = torch.where(unknown, conf, torch.full_like(conf, math.inf))
            rank = torch.argsort(torch.argsort(conf, dim=1), dim=1)  # 0 = least confident
            remask = rank < n_next[:, None]  # exactly n_next per row
            ids = torch.where(remask, torch.full_like(sampled, mask_id), sampled)
            if return_history:
                history.append(torch.where(remask, torch.full_like(sampled, -1), sampled).cpu())
    finally:
        model.train(was_training)
    return ids, history


def inpaint(
    model,
    ids: torch.Tensor,
    region_mask: torch.Tensor,
    steps: int = 12,
    choice_temperature: float = 4.5,
    generator: torch.Generator | None = None,
    return_history: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Regenerate the tokens inside a region, keep the rest.

    ids (B, L) or (B, h, w) token ids; region_mask bool, True = regenerate, of shape (L,),
    (h, w), (B, L) or (B, h, w). Returns (ids in the input's shape, history as in
    :func:`iterative_decode`).
    """
    B = ids.shape[0]
    flat = ids.reshape(B, -1)  # (B, L)
    region = torch.as_tensor(region_mask).bool().to(flat.device)
    region = region.reshape(-1, flat.shape[1]).expand(B, -1)  # (B, L)
    out, history = iterative_decode(model, B, steps, choice_temperature, generator,
                                    known=flat, known_mask=~region, return_history=return_history)
    return out.view_as(ids).to(ids.device), history


def token_region_from_pixels(region, downsample: int = 4, image_size: int = 32) -> torch.Tensor:
    """Pixel region -> token region: (image_size/ds, image_size/ds) bool, or (B, h, w) for a batch of masks.

    region: a bool pixel mask (H, W) or (B, H, W), or a box (top, left, bottom, right) in
    pixels, ends exclusive. A token is in the region if any pixel under it is.
    """
    if isinstance(region, (tuple, list)):
        if len(region) != 4:
            raise ValueError(f"a pixel box is (top, left, bottom, right), got {region!r}")
        top, left, bottom, right = (int(v) for v in region)
        mask = torch.zeros(image_size, image_size, dtype=torch.bool)
        mask[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)] = True
    else:
        mask = torch.as_tensor(region).bool()
    H, W = mask.shape[-2:]
    if H % downsample or W % downsample:
        raise ValueError(f"the pixel mask {H}x{W} is not divisible by the downsample factor {downsample}")
    h, w = H // downsample, W // downsample
    blocks = mask.reshape(*mask.shape[:-2], h, downsample, w, downsample)  # (..., h, ds, w, ds)
    return blocks.any(dim=-1).any(dim=-2)  # (..., h, w)
