"""Measuring a MAGE model: masked-token accuracy against the most-frequent-code baseline,
the [C]-padding trap's two symptoms (mode share, masked decoder-input similarity), linear
probes on token sequences tokenized once, and batched unconditional generation.

Shared by the MAGE notebooks (03-05); the generation metrics themselves are in ``fd.py`` and
``gen_metrics.py``.
"""

import math

import torch
import torch.nn.functional as F

from .augment import random_resized_crop, to_float
from .fd import FDReference, decode_ids, get_fd_classifier, shared_models_dir
from .generate import iterative_decode
from .mage import mode_counts
from .probe import ProbeData, random_subset
from .vqgan import encode_dataset


def _features_arg(features: torch.Tensor | None, start: int, batch_size: int, device) -> dict:
    """The ``features=`` keyword a continuous-input model's forward takes, for rows start..start+batch_size;
    nothing for a token model (features None)."""
    return {} if features is None else {"features": features[start:start + batch_size].to(device)}


@torch.no_grad()
def masked_token_accuracy(model, ids: torch.Tensor, ratio: float = 0.75, seed: int = 0,
                          batch_size: int = 500, features: torch.Tensor | None = None) -> dict:
    """Top-1 accuracy (%) on masked positions, with masks drawn as in training at a fixed ``ratio``.

    ids (N, L) token ids (e.g. the test split's). The masks (ceil(L * ratio) masked, the
    usual half of the sequence dropped from the encoder) come from a generator seeded with
    ``seed``, so two models evaluated with the same seed see the same masks. The baseline
    predicts the most frequent code of ``ids`` everywhere, on the same masked positions. A
    continuous-input model reads ``features`` (N, L, C), the unquantized ids.

    Besides top-1, how much probability the model puts where: on the same positions, the mean
    cross-entropy of the true code without label smoothing ("nll", nats), the mean probability
    of the true code ("p_true") and the mean entropy of the predicted distribution ("entropy",
    nats). Two models can rank the true code first equally often and still differ in loss.

    Returns {"acc", "baseline", "mode" (that code), "positions" (masked positions scored),
    "nll", "p_true", "entropy"}.
    """
    device = next(model.parameters()).device
    ids = ids.flatten(1)
    mode = int(torch.bincount(ids.flatten(), minlength=model.cfg.codebook_size).argmax())
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    correct = base = total = 0
    nll = p_true = entropy = 0.0
    try:
        for i in range(0, len(ids), batch_size):
            x = ids[i:i + batch_size].to(device)
            _, logits, mask = model(x, ratio=ratio, generator=gen, **_features_arg(features, i, batch_size, device))
            m = mask.bool()
            correct += int((logits.argmax(-1) == x)[m].sum())
            base += int((x == mode)[m].sum())
            total += int(m.sum())
            logp = F.log_softmax(logits.float()[m], dim=-1)  # (masked positions, K)
            logp_true = logp.gather(1, x[m][:, None]).squeeze(1)  # (masked positions,)
            nll -= float(logp_true.sum())
            p_true += float(logp_true.exp().sum())
            entropy -= float((logp.exp() * logp).sum())
    finally:
        model.train(was_training)
    return {"acc": 100.0 * correct / total, "baseline": 100.0 * base / total, "mode": mode, "positions": total,
            "nll": nll / total, "p_true": p_true / total, "entropy": entropy / total}


def mode_share(pred: torch.Tensor, mask: torch.Tensor) -> float:
    """The share of masked positions predicted as their image's most common masked prediction.

    pred (B, L) predicted ids; mask (B, L) bool or float, true / 1 where a position is masked.
    For each image the mode is the most common prediction among *its* masked positions (ties
    broken by the smallest id, which does not change the share); the result, a float in [0, 1],
    is the number of masked positions predicting their image's mode over the number of masked
    positions. Images with no masked position are ignored; nan when nothing is masked at all.
    Near 1 the decoder writes one code per image: the [C]-padding trap (docs/method.md 7.2).
    """
    pred = pred.flatten(1)
    mask = mask.reshape(pred.shape).bool()
    n = int(mask.sum())
    return float(mode_counts(pred, mask).sum()) / n if n else math.nan


def _masked_similarity_per_image(model, inp, masked, dropped) -> torch.Tensor:
    """(B,) mean pairwise cosine between each image's masked positions where the first decoder
    block reads them (after the decoder position embedding and that block's norm1); nan for an
    image with fewer than two masked positions. The caller sets eval mode and no_grad."""
    latent, idx = model.forward_encoder(inp, masked, dropped)
    x = model.decoder_pos_embed(model.decoder_input(latent, idx, masked))  # (B, 1+L, Dd)
    x = model.decoder_blocks[0].norm1(x)[:, 1:]  # (B, L, Dd): what the first attention reads, position 0 dropped
    x = F.normalize(x.float(), dim=-1)
    cos = x @ x.transpose(1, 2)  # (B, L, L)
    eye = torch.eye(masked.shape[1], dtype=torch.bool, device=masked.device)
    pairs = masked[:, :, None] & masked[:, None, :] & ~eye  # (B, L, L): distinct masked pairs
    n = pairs.sum((1, 2))
    return torch.where(n > 0, (cos * pairs).sum((1, 2)) / n.clamp(min=1), torch.full_like(n, math.nan, dtype=cos.dtype))


def _nanmean(x: torch.Tensor) -> float:
    x = x[~x.isnan()]
    return float(x.mean()) if len(x) else math.nan


@torch.no_grad()
def masked_input_similarity(model, ids: torch.Tensor, masked: torch.Tensor, dropped: torch.Tensor | None = None,
                            features: torch.Tensor | None = None) -> float:
    """How alike the decoder's masked positions are where its first block reads them.

    ids (B, L) token ids; masked, dropped (B, L) bool (dropped a subset of masked, default:
    nothing dropped); a continuous-input model also reads ``features`` (B, L, C). The decoder
    input (every masked position is [C] or the mask token) gets the decoder position embedding
    and the first decoder block's pre-attention LayerNorm (norm1); the result is the mean
    pairwise cosine similarity between an image's masked positions there, averaged over the
    images with at least two masked positions (nan if none). In eval mode (restored after).
    Close to 1: the decoder cannot tell its masked positions apart (docs/method.md 7.2).
    """
    device = next(model.parameters()).device
    ids = ids.flatten(1).to(device)
    masked, dropped = model._check_mask(ids, masked.to(device), None if dropped is None else dropped.to(device))
    inp = ids if features is None else features.to(device)  # what the encoder reads
    was_training = model.training
    model.eval()
    try:
        return _nanmean(_masked_similarity_per_image(model, inp, masked, dropped))
    finally:
        model.train(was_training)


@torch.no_grad()
def trap_metrics(model, ids: torch.Tensor, ratio: float = 0.75, seed: int = 0, batch_size: int = 500,
                 features: torch.Tensor | None = None) -> dict:
    """The [C]-padding trap's two symptoms on ids (N, L), with the masks of :func:`masked_token_accuracy`.

    The masks are drawn as masked_token_accuracy draws them (a generator seeded with ``seed``,
    one draw per batch of ``batch_size`` at the fixed ``ratio``), so with the same arguments
    both see the same masked positions. Returns {"mode_share": :func:`mode_share` of the
    one-pass predictions (argmax) over all masked positions, "mode_share_true": the same share
    for the true tokens (what a perfect model would score: the floor to read it against),
    "masked_similarity": the mean over images of :func:`masked_input_similarity`}. In eval
    mode (restored after).
    """
    device = next(model.parameters()).device
    ids = ids.flatten(1)
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    top = top_true = total = 0
    sims = []
    try:
        for i in range(0, len(ids), batch_size):
            x = ids[i:i + batch_size].to(device)
            f = _features_arg(features, i, batch_size, device)
            masked, dropped = model.sample_mask(len(x), device, ratio, gen)  # what model(x, ratio=, generator=) draws
            _, logits, _ = model(x, masked, dropped, **f)
            top += int(mode_counts(logits.argmax(-1), masked).sum())
            top_true += int(mode_counts(x, masked).sum())
            total += int(masked.sum())
            sims.append(_masked_similarity_per_image(model, f.get("features", x), masked, dropped).cpu())
    finally:
        model.train(was_training)
    sim = _nanmean(torch.cat(sims) if sims else torch.empty(0))
    return {"mode_share": top / total if total else math.nan, "mode_share_true": top_true / total if total else math.nan,
            "masked_similarity": sim}


@torch.no_grad()
def token_features(model, ids: torch.Tensor, batch_size: int = 500, keys=None) -> dict[str, torch.Tensor]:
    """``model.features`` over token ids (N, L) in batches -> {key: (N, D) float CPU}, in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, list] = {}
    try:
        for i in range(0, len(ids), batch_size):
            feats = model.features(ids[i:i + batch_size].to(device))
            for k, v in feats.items():
                if keys is None or k in keys:
                    out.setdefault(k, []).append(v.float().cpu())
    finally:
        model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def probe_tokens(probe: ProbeData, model, train_ids: torch.Tensor, test_ids: torch.Tensor, keys=None) -> dict[str, float]:
    """Linear-probe accuracy (%) of a MAGE encoder from the probe images' token ids, tokenized once.

    The same as ``probe.evaluate(model.features)`` on the images, without tokenizing the probe
    images again for every model. ``keys`` limits the read-outs (default: all of them).
    """
    tr = token_features(model, train_ids, keys=keys)
    te = token_features(model, test_ids, keys=keys)
    return probe.fit(tr, te)


UNTRAINED_SEEDS = (0, 1, 2)  # the initialisations the untrained-encoder anchor averages over


def untrained_encoders(build, seeds=UNTRAINED_SEEDS):
    """Untrained copies of a model, one per seed: ``build()`` under ``torch.manual_seed(seed)``, the
    caller's random state left as it was. Each is in eval mode, on the device ``build`` puts it."""
    models = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models.append(build().eval())
    return models


def untrained_probe(probe: ProbeData, build, train_ids: torch.Tensor, test_ids: torch.Tensor,
                    seeds=UNTRAINED_SEEDS) -> dict:
    """The anchor a trained MAGE's probe is read against: the same architecture untrained, probed on
    the same tokens, averaged over ``seeds`` initialisations. One draw alone moved by about 3 points
    between runs of notebook 03 (measured in ci: 26.8, 29.6 and 30.3 %), as much as the effect it
    anchors. Returns {"avg": mean of the seeds' "avg" probes, "seeds": each of them}."""
    models = untrained_encoders(build, seeds)
    train = {str(i): token_features(m, train_ids, keys=("avg",))["avg"] for i, m in enumerate(models)}
    test = {str(i): token_features(m, test_ids, keys=("avg",))["avg"] for i, m in enumerate(models)}
    accs = list(probe.fit(train, test).values())  # one head per initialisation, trained together
    return {"avg": sum(accs) / len(accs), "seeds": accs}


@torch.no_grad()
def input_features(tokenizer, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """What MAGE's input alone carries, as features of token ids (N, L) (CPU, float):

    - ``bag_of_codes`` (N, K): each image's code histogram (fractions of its L positions);
    - ``code_vectors`` (N, L * D): the codebook vectors at every position, flattened, as the
      quantizer compares them (l2-normalised when it normalises).
    """
    ids = ids.flatten(1).cpu()  # (N, L)
    codes = tokenizer.quantizer.codes().detach().float().cpu()  # (K, D)
    bag = F.one_hot(ids, codes.shape[0]).float().mean(1)  # (N, K)
    return {"bag_of_codes": bag, "code_vectors": codes[ids].flatten(1)}  # (N, L * D)


def probe_inputs(probe: ProbeData, tokenizer, train_ids: torch.Tensor, test_ids: torch.Tensor) -> dict[str, float]:
    """Linear-probe accuracy (%) on :func:`input_features` of the probe images' token ids: the bar a MAGE
    encoder's probe is read against (what its training added beyond the tokens themselves)."""
    tr, te = input_features(tokenizer, train_ids), input_features(tokenizer, test_ids)
    return probe.fit(tr, te)


@torch.no_grad()
def generate(model, n: int, steps: int, temperature: float, seed: int = 0, batch_size: int = 250,
             **decoding) -> torch.Tensor:
    """``n`` token grids (n, L) on the CPU from nothing, by iterative decoding in batches.

    ``temperature`` is the choice temperature; ``decoding`` passes the study's other settings
    (sampling_temperature, top_k, top_p, schedule) to :func:`iterative_decode`."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        ids, _ = iterative_decode(model, min(batch_size, n - i), steps, temperature, gen, return_history=False,
                                  **decoding)
        out.append(ids.cpu())
    return torch.cat(out)


REF_IMAGES_SEED = 4  # fixes the train images every metric is measured against, for every run seed
REAL_SEED = 5  # fixes the real test images of the reference points, for every run seed


class GenerationScorer:
    """The generation metrics for a notebook run (03-04): the shared feature network, its fixed
    reference images, and the two reference points every score is read against (real test
    images: the floor; tokenizer reconstructions of them: the best these tokens allow).

    The instrument does not depend on the run's seed: the feature network is shared (trained
    once with a fixed seed, ``get_fd_classifier``) and the reference and real images are fixed
    subsets, so two seeds of a run score in the same space against the same images. Only the
    samples (``samples``, drawn with the run's seed unless told otherwise) change with it.

    ``score(images)`` is ``fd_classifier`` (a float); ``metrics(images)`` is {"fd", "kid",
    "kid_std", "precision", "recall"}. ``real`` and ``recon`` are the reference points'
    fd_classifier, ``real_metrics`` and ``recon_metrics`` all their metrics.
    """

    def __init__(self, run, tokenizer):
        self.gen, self.seed, self.tokenizer, self.device = run.cfg.generation, run.seed, tokenizer, run.device
        self.classifier, self.classifier_acc = get_fd_classifier(
            run.data, run.cfg.fd_classifier, run.cfg.fd_classifier_train, shared_models_dir(), run.device)
        g, train = self.gen, run.data.train_images
        self.ref = FDReference(self.classifier, train[random_subset(len(train), g.reference, REF_IMAGES_SEED)], run.device,
                               kid_subsets=g.kid_subsets, kid_subset_size=g.kid_subset_size, pr_k=g.pr_k)
        self.real_images = run.data.test_images[random_subset(len(run.data.test_images), g.samples, REAL_SEED)]
        self.recon_images = self.through_tokenizer(self.real_images)
        self.real_metrics, self.recon_metrics = self.metrics(self.real_images), self.metrics(self.recon_images)
        self.real, self.recon = self.real_metrics["fd"], self.recon_metrics["fd"]

    def samples(self, model, temperature: float | None = None, seed: int | None = None) -> torch.Tensor:
        """The preset's number of unconditional samples as images (n, 3, H, W) in [0, 1].

        Drawn with the run's seed unless ``seed`` is given (``sampling_noise`` uses others).
        """
        g = self.gen
        tau = g.temperature if temperature is None else temperature
        return decode_ids(self.tokenizer, generate(model, g.samples, g.steps, tau, self.seed if seed is None else seed,
                                                   g.batch_size))

    def score(self, images: torch.Tensor) -> float:
        """fd_classifier of images (n, 3, H, W) against the reference images."""
        return self.ref.score(images)

    def views_score(self, crop_scale: tuple[float, float], seed: int = 0) -> float:
        """fd_classifier of what a model trained with RandomResizedCrop(``crop_scale``) learns to
        imitate: the real test images, each cropped (and flipped) once as in training, through the
        tokenizer. A model can at best generate its training distribution, so this is the floor
        its samples are read against (the uncropped reconstructions are ``recon``)."""
        views = random_resized_crop(to_float(self.real_images), tuple(crop_scale), hflip=True,
                                    generator=torch.Generator().manual_seed(seed))  # (n, 3, H, W) in [0, 1]
        return self.score(self.through_tokenizer((views.clamp(0, 1) * 255).round().to(torch.uint8)))

    def through_tokenizer(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (n, 3, H, W) -> the tokenizer's reconstructions of them (n, 3, H, W) in [0, 1]."""
        return decode_ids(self.tokenizer, encode_dataset(self.tokenizer, images, device=self.device))

    def metrics(self, images: torch.Tensor) -> dict[str, float]:
        """{"fd", "kid", "kid_std", "precision", "recall"} of images (n, 3, H, W), in one pass of features."""
        return self.ref.metrics(images)

    def sampling_noise(self, model, untrained_metrics: dict, first: dict | None = None) -> dict:
        """The metrics' spread over sampling seeds for one trained model, next to the gap it is read against.

        Scores ``gen.noise_seeds`` sample sets of ``model`` (seeds run seed, run seed + 1000, ...;
        ``first``, when given, is the metrics of the run's own samples, not drawn again). The gap
        is untrained model minus real test images (``untrained_metrics`` against ``real_metrics``):
        the range a trained model's score moves in. Returns {"seeds", "fd", "kid" (one value per
        seed), "fd_std", "kid_std" (sample std over seeds; 0 with one seed), "fd_gap", "kid_gap",
        "fd_ratio", "kid_ratio" (std / gap, None when the gap is not positive; the report and
        cpu presets are sized for at most 0.2)}.
        """
        seeds = [self.seed + 1000 * i for i in range(self.gen.noise_seeds)]
        per_seed = [first if i == 0 and first is not None else self.metrics(self.samples(model, seed=s))
                    for i, s in enumerate(seeds)]
        out: dict = {"seeds": seeds}
        for k in ("fd", "kid"):
            vals = torch.tensor([m[k] for m in per_seed], dtype=torch.float64)
            std = float(vals.std()) if len(vals) > 1 else 0.0
            gap = untrained_metrics[k] - self.real_metrics[k]
            out |= {k: vals.tolist(), f"{k}_std": std, f"{k}_gap": gap,
                    f"{k}_ratio": std / gap if gap > 0 else None}
        return out
