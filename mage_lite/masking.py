"""MAGE's variable masking: the token mask / drop sets, and the masking-ratio distributions they draw from.

MAGE draws ONE masking ratio per batch from a truncated Gaussian (mean 0.55, std 0.25,
truncated to [0.5, 1.0]; the mean of the result is about 0.69). From one uniform noise
ranking per image, the ceil(L * ratio) lowest positions are masked and the ceil(0.5 * L)
lowest are dropped from the encoder (so dropped is a subset of masked).

The truncated Gaussian is sampled exactly by inverse CDF; the official code calls
scipy's truncnorm, which does the same. Ratios are kept in float64 on the CPU, as the
official numpy code does, so that ceil(L * ratio) is taken at the same precision.
"""

import math
from typing import NamedTuple

import torch


class TokenMask(NamedTuple):
    ratios: torch.Tensor  # (B,) float64 on the CPU: the ratio each row was masked with
    noise: torch.Tensor  # (B, L) uniform noise; its ranking decides which positions go first
    masked: torch.Tensor  # (B, L) bool: the ceil(L * ratio) lowest-noise positions
    dropped: torch.Tensor  # (B, L) bool: the ceil(drop_ratio * L) lowest-noise positions (subset of masked)


def mask_tokens(
    batch: int,
    length: int,
    ratio_dist: "RatioDist | str",
    drop_ratio: float = 0.5,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TokenMask:
    """Draw MAGE's masking for a batch of token sequences of ``length``.

    One ratio for the whole batch (as the official code), or one per row with ``per_sample``.
    Position ranks come from one uniform noise draw per row (B, L); ties are broken by the
    sort, so the counts are always exact. ``device`` defaults to the generator's (or CPU).
    """
    dist = make_ratio_dist(ratio_dist)
    drop_ratio = _check_ratio("drop_ratio", drop_ratio)
    if batch < 1 or length < 1:
        raise ValueError(f"batch and length must be >= 1, got {batch} and {length}")
    device = torch.device(device) if device is not None else (generator.device if generator is not None else torch.device("cpu"))
    ratios = dist.sample(batch if per_sample else 1, generator)  # float64, CPU
    if not per_sample:
        ratios = ratios.expand(batch).clone()  # (B,)
    n_mask = torch.ceil(length * ratios).long()  # (B,) on the CPU: no device sync
    n_drop = mask_count(length, drop_ratio)
    if n_drop > int(n_mask.min()):
        raise ValueError(
            f"drop_ratio {drop_ratio} must not exceed the masking ratio {float(ratios.min()):.4f}: "
            f"ceil({drop_ratio} * {length}) = {n_drop} dropped tokens > {int(n_mask.min())} masked"
        )
    noise = torch.rand(batch, length, generator=generator, device=device)  # (B, L)
    rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)  # (B, L): 0 = lowest noise
    masked = rank < n_mask.to(device)[:, None]  # (B, L)
    dropped = rank < n_drop  # (B, L)
    return TokenMask(ratios, noise, masked, dropped)


def mask_count(length: int, ratio: float) -> int:
    """ceil(length * ratio) in float64, as the official code's np.ceil(seq_len * mask_rate)."""
    return int(math.ceil(length * float(ratio)))


def _check_ratio(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a masking ratio in [0, 1], got {value}")
    return value


# --- masking-ratio distributions ---------------------------------------------------
def _uniforms(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """n uniforms in [0, 1) as float64 on the CPU, drawn from ``generator`` (on any device) or the CPU RNG."""
    if n < 0:
        raise ValueError(f"the number of samples must be >= 0, got {n}")
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, generator=generator, device=device)  # float32: MPS has no float64
    return u.to("cpu", torch.float64)


class TruncatedGaussian:
    """Gaussian(mean, std) truncated to [low, high], sampled exactly by inverse CDF."""

    def __init__(self, mean: float = 0.55, std: float = 0.25, low: float = 0.5, high: float = 1.0):
        self.low, self.high = _check_ratio("the lower bound", low), _check_ratio("the upper bound", high)
        if not low < high:
            raise ValueError(f"the truncated Gaussian needs low < high, got low={low} and high={high}")
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"the truncated Gaussian needs a finite mean and a std > 0, got mean={mean} and std={std}")
        self.mu, self.sigma = float(mean), float(std)
        self.a, self.b = (self.low - self.mu) / self.sigma, (self.high - self.mu) / self.sigma  # standardised bounds
        # Mirror when both bounds are in the right tail: ndtr is precise near 0, not near 1.
        self._flip = self.a > 0
        lo, hi = (-self.b, -self.a) if self._flip else (self.a, self.b)
        self._lo, self._hi = lo, hi
        self._cdf_lo = torch.special.ndtr(torch.tensor(lo, dtype=torch.float64))
        self._cdf_hi = torch.special.ndtr(torch.tensor(hi, dtype=torch.float64))
        if not self._cdf_hi > self._cdf_lo:
            raise ValueError(f"[{low}, {high}] lies too far in the tail of N({mean}, {std}**2) to sample it")

    def __repr__(self) -> str:
        return f"TruncatedGaussian(mean={self.mu}, std={self.sigma}, low={self.low}, high={self.high})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n ratios, (n,) float64 on the CPU: x = mu + sigma * ndtri(Phi(a) + u * (Phi(b) - Phi(a)))."""
        u = _uniforms(n, generator)
        z = torch.special.ndtri(self._cdf_lo + u * (self._cdf_hi - self._cdf_lo))  # standard normal in [lo, hi]
        z = -z if self._flip else z
        return (self.mu + self.sigma * z).clamp(self.low, self.high)  # clamp: rounding only

    def mean(self) -> float:
        """Closed form: mu + sigma * (phi(a) - phi(b)) / (Phi(b) - Phi(a))."""
        phi = lambda t: math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)  # noqa: E731
        z = float(self._cdf_hi - self._cdf_lo)
        return self.mu + self.sigma * (phi(self.a) - phi(self.b)) / z

    def pdf(self, x) -> torch.Tensor:
        """Density at x (any shape), 0 outside [low, high]; float64."""
        x = torch.as_tensor(x, dtype=torch.float64)
        t = (x - self.mu) / self.sigma
        dens = torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) / (self.sigma * (self._cdf_hi - self._cdf_lo))
        return torch.where((x >= self.low) & (x <= self.high), dens, torch.zeros_like(dens))

    def cdf(self, x) -> torch.Tensor:
        """P(ratio <= x) for x of any shape; float64."""
        x = torch.as_tensor(x, dtype=torch.float64).clamp(self.low, self.high)
        t = (x - self.mu) / self.sigma
        if self._flip:  # P(X <= x) = P(-Z >= -t) with -Z in [lo, hi]
            return (self._cdf_hi - torch.special.ndtr(-t)) / (self._cdf_hi - self._cdf_lo)
        return (torch.special.ndtr(t) - self._cdf_lo) / (self._cdf_hi - self._cdf_lo)


class Fixed:
    """The same ratio every time (MAE-style masking, the ablation's fixed 0.75)."""

    def __init__(self, ratio: float):
        self.ratio = _check_ratio("the fixed masking ratio", ratio)
        self.low = self.high = self.ratio

    def __repr__(self) -> str:
        return f"Fixed({self.ratio})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) float64 on the CPU, all equal to the ratio (draws nothing from the generator)."""
        if n < 0:
            raise ValueError(f"the number of samples must be >= 0, got {n}")
        return torch.full((n,), self.ratio, dtype=torch.float64)

    def mean(self) -> float:
        return self.ratio

    def pdf(self, x) -> torch.Tensor:
        """A point mass: +inf at the ratio, 0 elsewhere (plot it as a vertical line)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        return torch.where(x == self.ratio, torch.full_like(x, math.inf), torch.zeros_like(x))

    def cdf(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        return (x >= self.ratio).to(torch.float64)


class Uniform:
    """A ratio uniform on [low, high]."""

    def __init__(self, low: float, high: float):
        self.low, self.high = _check_ratio("the lower bound", low), _check_ratio("the upper bound", high)
        if not low < high:
            raise ValueError(f"the uniform ratio distribution needs low < high, got low={low} and high={high}")

    def __repr__(self) -> str:
        return f"Uniform({self.low}, {self.high})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) float64 on the CPU."""
        return self.low + (self.high - self.low) * _uniforms(n, generator)

    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    def pdf(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        inside = (x >= self.low) & (x <= self.high)
        return inside.to(torch.float64) / (self.high - self.low)

    def cdf(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        return ((x - self.low) / (self.high - self.low)).clamp(0.0, 1.0)


RatioDist = TruncatedGaussian | Fixed | Uniform
SPEC_HELP = "use 'truncnorm', 'truncnorm:mean,std,low,high', 'fixed:R' or 'uniform:LOW,HIGH'"


def make_ratio_dist(spec: "str | RatioDist") -> RatioDist:
    """A distribution from a config string: "truncnorm" (MAGE's default), "truncnorm:0.55,0.25,0.5,1.0",
    "fixed:0.75" or "uniform:0.5,1.0". A distribution object is returned as it is."""
    if isinstance(spec, (TruncatedGaussian, Fixed, Uniform)):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"the masking-ratio spec must be a string, got {spec!r}; {SPEC_HELP}")
    name, _, args = spec.strip().lower().partition(":")
    try:
        values = [float(v) for v in args.split(",")] if args.strip() else []
    except ValueError:
        raise ValueError(f"masking-ratio spec {spec!r} has a non-numeric argument; {SPEC_HELP}") from None
    if name == "truncnorm" and len(values) in (0, 4):
        return TruncatedGaussian(*values)
    if name == "fixed" and len(values) == 1:
        return Fixed(values[0])
    if name == "uniform" and len(values) == 2:
        return Uniform(*values)
    raise ValueError(f"unknown masking-ratio spec {spec!r}; {SPEC_HELP}")
