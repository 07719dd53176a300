"""Generation metrics: an offline Fréchet distance in a small CIFAR classifier's feature space,
and FID through torch-fidelity only when it can run without downloading anything.

- ``FDClassifier``: a small ResNet, the project's *feature network*. One per dataset, image
  size and config, trained once with the shared loop and a fixed seed (``get_fd_classifier``)
  and cached under ``runs/shared/models/``: every seed, arm and preset that uses the same data
  and configs measures in the same feature space. Its pooled, projected layer is the feature
  space of ``fd_classifier`` and of KID, precision and recall (``gen_metrics.py``): **not
  Inception**. The numbers are comparable only within this project (same feature network),
  never with published FID or KID.
- ``frechet_distance(a, b)``: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in
  float64, with the square-root trace taken from the eigenvalues of the symmetric matrix
  S_a^(1/2) S_b S_a^(1/2) (no scipy).
- ``FDReference``: all those metrics against one fixed set of real images.
- ``fid``: Inception FID via torch-fidelity when the package is importable *and* its
  Inception weights are already on disk; otherwise it prints one line saying why it is
  skipped and how to enable it, and returns None. It never downloads.
- ``decode_ids``: token grids -> images with the tokenizer, in batches.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .artifacts import config_hash, get_or_train, load_json, runs_root, save_json
from .augment import random_resized_crop, to_float
from .gen_metrics import kid, precision_recall
from .train import TrainConfig, fit

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------- the classifier

@dataclass
class FDClassifierConfig:
    width: int = 32  # channels of the stem and the first stage; the stages have width, 2 width, 4 width
    blocks: int = 1  # residual blocks per stage (3 stages; 1 is a ResNet-8, 3 a ResNet-20 in depth)
    feature_dim: int = 128  # the linear feature layer after pooling: the feature space of every generation metric
    crop_scale: tuple = (0.6, 1.0)  # mild RandomResizedCrop for its training (plus a flip)

    def __post_init__(self):
        self.crop_scale = tuple(self.crop_scale)
        if self.width < 1 or self.feature_dim < 1 or self.blocks < 1:
            raise ValueError(f"fd_classifier.width, blocks and feature_dim must be >= 1, got {self.width}, "
                             f"{self.blocks} and {self.feature_dim}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"fd_classifier.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN when the shape changes), then ReLU.

    x (B, c_in, H, W) -> (B, c_out, H / stride, W / stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class FDClassifier(nn.Module):
    """A small ResNet whose pooled, projected features are the project's generation feature space.

    Not FID: the features are a small classifier's trained on the project's own data,
    comparable only within this project.

    imgs (B, 3, S, S) in [0, 1], normalised -> stem 3x3 conv-BN-ReLU (width) at S px ->
    2x2 max-pool -> 3 stages of ``blocks`` residual blocks with width, 2 width, 4 width
    channels at S/2, S/4, S/8 px (stride 2 entering stages 2 and 3) -> global average pool
    (B, 4 width) -> Linear + BN + ReLU: the features (B, feature_dim) -> Linear head (B, classes).
    Downsampling right after the stem keeps it fast on a CPU thread at 32 px.
    """

    def __init__(self, cfg: FDClassifierConfig, num_classes: int = 10):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"the FD classifier needs at least 2 classes, got {num_classes}")
        self.cfg = cfg
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(2)]
        c_in = w
        for stage, c_out in enumerate((w, 2 * w, 4 * w)):
            for b in range(cfg.blocks):
                layers.append(ResidualBlock(c_in, c_out, stride=2 if stage > 0 and b == 0 else 1))
                c_in = c_out
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(4 * w, cfg.feature_dim, bias=False), nn.BatchNorm1d(cfg.feature_dim),
                                   nn.ReLU(inplace=True))
        self.head = nn.Linear(cfg.feature_dim, num_classes)
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs (B, 3, H, W) float in [0, 1] -> penultimate features (B, feature_dim)."""
        x = self.body((imgs.float() - self.mean) / self.std)  # (B, 4w, S/8, S/8)
        return self.embed(x.mean(dim=(2, 3)))

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(imgs))

    def training_loss(self, batch, step: int):
        """batch = (imgs (B, 3, H, W) in [0, 1], labels (B,)) -> (cross-entropy, {"acc"})."""
        imgs, labels = batch
        logits = self(imgs)
        loss = F.cross_entropy(logits.float(), labels)
        with torch.no_grad():
            acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"acc": acc}


class LabeledSampler:
    """Augmented (imgs, labels) training batches on ``device``: RandomResizedCrop(scale) + flip.

    ``sampler(batch_size, generator)`` -> (float images (B, 3, H, W) in [0, 1], int64 labels (B,)).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device="cpu", crop_scale=(0.6, 1.0),
                 hflip: bool = True):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device).long()
        self.crop_scale, self.hflip = tuple(crop_scale), hflip

    def __call__(self, batch_size: int, generator: torch.Generator | None = None):
        idx = torch.randint(len(self.images), (batch_size,), device=self.device, generator=generator)
        imgs = random_resized_crop(to_float(self.images[idx]), self.crop_scale, hflip=self.hflip, generator=generator)
        return imgs, self.labels[idx]


@torch.no_grad()
def classifier_features(model: FDClassifier, images: torch.Tensor, batch_size: int = 500,
                        device="cpu") -> torch.Tensor:
    """Features (N, feature_dim) float64 on the CPU of uint8 or float [0, 1] images (N, 3, H, W), eval mode."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            x = to_float(x) if x.dtype == torch.uint8 else x.float()
            out.append(model.features(x).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def accuracy(model: FDClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500,
             device="cpu") -> float:
    """Top-1 accuracy (%) of the classifier on uint8 images."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(to_float(images[i:i + batch_size].to(device)))
        correct += int((logits.argmax(1).cpu() == labels[i:i + batch_size]).sum())
    return 100.0 * correct / max(1, len(images))


FEATURE_NET_SEED = 0  # every feature network trains with this seed, whatever the run's seed


def shared_models_dir(root: Path | str | None = None) -> Path:
    """Where feature networks are cached: ``<runs root>/shared/models/``, beside the presets' folders.

    Not under one preset's ``models/``: the network is keyed by data, image size and configs only,
    so every preset, seed and arm that uses the same data and configs reuses one network.
    """
    return Path(root if root is not None else runs_root()) / "shared" / "models"


def feature_net_key(dataset, cfg: FDClassifierConfig, train_cfg: TrainConfig) -> dict:
    """What identifies a feature network: the data (:attr:`ImageDataset.identity`), image size, classes, model and training configs.

    Deliberately not the run's seed (the network trains with ``FEATURE_NET_SEED``): two seeds of a
    run measure in the same feature space.
    """
    return {"model": asdict(cfg), "classes": len(dataset.classes), "train": asdict(train_cfg), "data": dataset.identity,
            "image_size": int(dataset.train_images.shape[-1]), "train_seed": FEATURE_NET_SEED}


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (POSIX ``flock``; no lock where fcntl is missing).

    Two notebooks that need the same shared network at once (the report runs two at a time)
    then train it once: the second waits, then reuses it.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; concurrent training is deterministic, only wasted work
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def get_fd_classifier(dataset, cfg: FDClassifierConfig, train_cfg: TrainConfig, models_dir: Path | str | None = None,
                      device="cpu", progress: bool = True) -> tuple[FDClassifier, float]:
    """The feature network for ``dataset``, trained once with the shared loop on its train split, or reused.

    Trained with the fixed seed ``FEATURE_NET_SEED`` and cached under ``models_dir`` (default
    ``shared_models_dir()``) by ``feature_net_key``: the run's seed plays no part, so every seed,
    arm and preset with the same data and configs shares it. Returns (model in eval mode, frozen,
    test-split top-1 accuracy in %). The accuracy is measured once after training, stored beside
    the model, and printed on every call. A lock file makes concurrent callers train it once.
    """
    device = torch.device(device)
    models_dir = shared_models_dir() if models_dir is None else models_dir
    n_classes = len(dataset.classes)
    key = feature_net_key(dataset, cfg, train_cfg)
    sampler = LabeledSampler(dataset.train_images, dataset.train_labels, device, cfg.crop_scale)

    def build():  # the initial weights too come from the fixed seed, not from the run's global RNG state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(FEATURE_NET_SEED)
            return FDClassifier(cfg, n_classes)

    def train(model, run_dir):
        return fit(model, sampler, train_cfg, run_dir, seed=FEATURE_NET_SEED, device=device, desc="fd-classifier",
                   progress=progress)

    with _exclusive(Path(models_dir) / f".fd-classifier-{config_hash(key)}.lock"):
        model, _, run_dir = get_or_train("fd-classifier", key, build, train, models_dir, device)
        acc_file = run_dir / "test_acc.json"
        if acc_file.exists():
            acc = float(load_json(acc_file)["test_acc"])
        else:
            acc = accuracy(model, dataset.test_images, dataset.test_labels, device=device)
            save_json({"test_acc": acc, "test_images": len(dataset.test_images)}, acc_file)
    print(f"feature network (fd-classifier, ResNet width {cfg.width} x {cfg.blocks} block(s)/stage, "
          f"{cfg.feature_dim}-d features): test top-1 {acc:.1f} % on {len(dataset.test_images)} test images")
    return model.requires_grad_(False).eval(), acc


# ----------------------------------------------------------------------------- Fréchet distance

def _sqrt_psd(mat: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (float64), via eigh."""
    vals, vecs = torch.linalg.eigh((mat + mat.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def gaussian_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), covariance (D, D)) of features (N, D) in float64; the covariance is unbiased (N - 1)."""
    x = torch.as_tensor(feats).double()
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {tuple(x.shape)}")
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (len(x) - 1)


def frechet_from_stats(mu1, cov1, mu2, cov2) -> float:
    """d^2 = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)).

    Tr((S1 S2)^(1/2)) = sum of sqrt(eigenvalues of sqrt(S1) S2 sqrt(S1)): that matrix is
    symmetric PSD and has the same eigenvalues as S1 S2, so eigh is stable and exact enough.
    """
    mu1, mu2 = torch.as_tensor(mu1).double(), torch.as_tensor(mu2).double()
    cov1, cov2 = torch.as_tensor(cov1).double(), torch.as_tensor(cov2).double()
    s1 = _sqrt_psd(cov1)
    middle = s1 @ cov2 @ s1
    eig = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0)
    d2 = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * eig.sqrt().sum()
    return float(d2.clamp(min=0))


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D)."""
    return frechet_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b))


# ----------------------------------------------------------------------------- FID (gated)

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # the file torch-fidelity downloads
FID_ENV = "MAGE_LITE_INCEPTION_WEIGHTS"


def _inception_weights() -> Path | None:
    """torch-fidelity's Inception weights if already on disk: $MAGE_LITE_INCEPTION_WEIGHTS, else torch hub's cache."""
    if os.environ.get(FID_ENV):
        p = Path(os.environ[FID_ENV]).expanduser()
        return p if p.is_file() else None
    p = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    return p if p.is_file() else None


def fid_status() -> tuple[bool, str]:
    """(available, one-line reason). Available only when torch_fidelity imports and its weights are local."""
    how = (f"to enable it: pip install torch-fidelity, then put {INCEPTION_WEIGHTS} in "
           f"{Path(torch.hub.get_dir()) / 'checkpoints'} or point ${FID_ENV} at it")
    if importlib.util.find_spec("torch_fidelity") is None:
        return False, f"FID skipped: torch-fidelity is not installed (this project never downloads during a run); {how}"
    weights = _inception_weights()
    if weights is None:
        where = os.environ.get(FID_ENV) or str(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS)
        return False, f"FID skipped: torch-fidelity's Inception weights are not on disk at {where} (never downloaded here); {how}"
    return True, f"FID: torch-fidelity with local Inception weights {weights}"


class _UInt8Images(torch.utils.data.Dataset):
    """What torch-fidelity reads: uint8 (3, H, W) tensors."""

    def __init__(self, images: torch.Tensor):
        imgs = images.detach().cpu()
        self.images = imgs if imgs.dtype == torch.uint8 else (imgs.float().clamp(0, 1) * 255).round().to(torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def fid(images_a: torch.Tensor, images_b: torch.Tensor, verbose: bool = True) -> float | None:
    """Inception FID between two image sets (uint8 or float [0, 1], (N, 3, H, W)) or None when skipped.

    Never downloads: runs only when :func:`fid_status` says the package and weights are local.
    """
    ok, message = fid_status()
    if verbose:
        print(message)
    if not ok:
        return None
    import torch_fidelity

    kwargs = dict(input1=_UInt8Images(images_a), input2=_UInt8Images(images_b), fid=True, verbose=False,
                  feature_extractor_weights_path=str(_inception_weights()))
    version = tuple(int(v) for v in torch_fidelity.__version__.split(".")[:2] if v.isdigit())
    if version >= (0, 4):
        kwargs["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        kwargs["cuda"] = torch.cuda.is_available()
    return float(torch_fidelity.calculate_metrics(**kwargs)["frechet_inception_distance"])


# ----------------------------------------------------------------------------- tokens -> images

@torch.no_grad()
def decode_ids(tokenizer, ids: torch.Tensor, batch_size: int = 256, device=None) -> torch.Tensor:
    """Token grids (N, L) or (N, h, w) -> images (N, 3, H, W) float in [0, 1] on the CPU, in batches."""
    if device is None:
        device = next(tokenizer.parameters()).device
    n = ids.shape[0]
    side = int(round(ids[0].numel() ** 0.5))
    grids = ids.reshape(n, side, side)
    was_training = tokenizer.training
    tokenizer.eval()
    out = []
    try:
        for i in range(0, n, batch_size):
            out.append(tokenizer.decode_ids(grids[i:i + batch_size].to(device).long()).float().cpu())
    finally:
        tokenizer.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 3, 0, 0)


class FDReference:
    """Every generation metric against one fixed set of real images, in one feature network's features.

    Holds the reference features (M, feature_dim) and their Gaussian (mean, covariance).
    ``score(images)`` is ``fd_classifier``: the Fréchet distance of a Gaussian fitted to the
    features of ``images`` (uint8 or float [0, 1]) to the reference one. ``metrics(images)`` adds,
    in the same features, KID (mean +- std over subsets) and k-NN precision and recall
    (``gen_metrics``). Not FID, KID or P/R in Inception features (see the module doc).
    """

    def __init__(self, classifier: FDClassifier, reference_images: torch.Tensor, device="cpu", batch_size: int = 500,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, pr_k: int = 3, seed: int = 0):
        self.classifier, self.device, self.batch_size = classifier, device, batch_size
        self.kid_subsets, self.kid_subset_size, self.pr_k, self.seed = kid_subsets, kid_subset_size, pr_k, seed
        self.ref_features = self.features(reference_images)  # (M, feature_dim) float64
        self.mu, self.cov = gaussian_stats(self.ref_features)
        self.n_reference = len(reference_images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, H, W) uint8 or float [0, 1] -> features (N, feature_dim) float64 on the CPU."""
        return classifier_features(self.classifier, images, self.batch_size, self.device)

    def score(self, images: torch.Tensor) -> float:
        """fd_classifier of images (N, 3, H, W) against the reference."""
        return self.fd_from_features(self.features(images))

    def fd_from_features(self, feats: torch.Tensor) -> float:
        return frechet_from_stats(*gaussian_stats(feats), self.mu, self.cov)

    def metrics(self, images: torch.Tensor) -> dict[str, float]:
        """{"fd", "kid", "kid_std", "precision", "recall"} of images (N, 3, H, W) against the reference."""
        return self.metrics_from_features(self.features(images))

    def metrics_from_features(self, feats: torch.Tensor) -> dict[str, float]:
        """The metrics of features (N, feature_dim).

        KID draws its subsets with ``seed`` (the same features always give the same KID).
        Precision and recall compare the N features with N reference features drawn with
        ``seed`` (all of them when there are fewer), since k-NN radii depend on set size.
        """
        k = kid(feats, self.ref_features, self.kid_subsets, self.kid_subset_size, self.seed)
        n = min(len(feats), len(self.ref_features))
        sub = torch.randperm(len(self.ref_features), generator=torch.Generator().manual_seed(self.seed))[:n]
        pr = precision_recall(feats, self.ref_features[sub], self.pr_k)
        return {"fd": self.fd_from_features(feats), "kid": k.mean, "kid_std": k.std, "precision": pr.precision,
                "recall": pr.recall}
