"""Measuring a MAGE model: masked-token accuracy against the most-frequent-code baseline,
linear probes on token sequences tokenized once, and batched unconditional generation.

Shared by the MAGE notebooks (03-05); the generation metrics themselves are in ``fd.py``.
"""

import torch

from .fd import FDReference, decode_ids, get_fd_classifier
from .generate import iterative_decode
from .probe import ProbeData, linear_probe, random_subset
from .vqgan import encode_dataset


@torch.no_grad()
def masked_token_accuracy(model, ids: torch.Tensor, ratio: float = 0.75, seed: int = 0,
                          batch_size: int = 500, features: torch.Tensor | None = None) -> dict:
    """Top-1 accuracy (%) on masked positions, with masks drawn as in training at a fixed ``ratio``.

    ids (N, L) token ids (e.g. the test split's). The masks (ceil(L * ratio) masked, the
    usual half of the sequence dropped from the encoder) come from a generator seeded with
    ``seed``, so two models evaluated with the same seed see the same masks. The baseline
    predicts the most frequent code of ``ids`` everywhere, on the same masked positions. A
    continuous-input model reads ``features`` (N, L, C), the unquantized ids.

    Returns {"acc", "baseline", "mode" (that code), "positions" (masked positions scored)}.
    """
    device = next(model.parameters()).device
    ids = ids.flatten(1)
    mode = int(torch.bincount(ids.flatten(), minlength=model.cfg.codebook_size).argmax())
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    correct = base = total = 0
    try:
        for i in range(0, len(ids), batch_size):
            x = ids[i:i + batch_size].to(device)
            f = None if features is None else features[i:i + batch_size].to(device)
            _, logits, mask = model(x, ratio=ratio, generator=gen, features=f)
            m = mask.bool()
            correct += int((logits.argmax(-1) == x)[m].sum())
            base += int((x == mode)[m].sum())
            total += int(m.sum())
    finally:
        model.train(was_training)
    return {"acc": 100.0 * correct / total, "baseline": 100.0 * base / total, "mode": mode, "positions": total}


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

    The same as ``probe.evaluate(model.features_from_images)`` without tokenizing the probe
    images again for every model. ``keys`` limits the read-outs (default: all of them).
    """
    tr = token_features(model, train_ids, keys=keys)
    te = token_features(model, test_ids, keys=keys)
    return {k: linear_probe(tr[k], probe.train_labels, te[k], probe.test_labels, probe.cfg, probe.seed) for k in tr}


@torch.no_grad()
def generate(model, n: int, steps: int, temperature: float, seed: int = 0, batch_size: int = 250) -> torch.Tensor:
    """``n`` token grids (n, L) on the CPU from nothing, by iterative decoding in batches."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        ids, _ = iterative_decode(model, min(batch_size, n - i), steps, temperature, gen, return_history=False)
        out.append(ids.cpu())
    return torch.cat(out)


class GenerationScorer:
    """fd_classifier for a notebook run: the preset's classifier, its fixed reference images, and
    the two reference points every score is read against (real test images: the floor;
    tokenizer reconstructions of them: the best these tokens allow). Notebooks 03-04.
    """

    def __init__(self, run, tokenizer):
        self.gen, self.seed, self.tokenizer = run.cfg.generation, run.seed, tokenizer
        self.classifier, self.classifier_acc = get_fd_classifier(
            run.data, run.cfg.fd_classifier, run.cfg.fd_classifier_train, run.models_dir, run.device, run.seed)
        train = run.data.train_images
        self.ref = FDReference(self.classifier, train[random_subset(len(train), self.gen.reference, run.seed + 4)], run.device)
        self.real_images = run.data.test_images[random_subset(len(run.data.test_images), self.gen.samples, run.seed + 5)]
        self.real = self.ref.score(self.real_images)
        self.recon = self.ref.score(decode_ids(tokenizer, encode_dataset(tokenizer, self.real_images, device=run.device)))

    def samples(self, model, temperature: float | None = None) -> torch.Tensor:
        """The preset's number of unconditional samples as images (n, 3, H, W) in [0, 1]."""
        g = self.gen
        tau = g.temperature if temperature is None else temperature
        return decode_ids(self.tokenizer, generate(model, g.samples, g.steps, tau, self.seed, g.batch_size))

    def score(self, images: torch.Tensor) -> float:
        return self.ref.score(images)
