"""The names the notebooks and the lab share: each notebook's file stem and the metric keys the lab reads.

A notebook logs its numbers with literal keys (``run.log(probe_mage=...)``), readable where they are
written; the ablation report and the README's Results read some of them back. Those keys are
declared here, under the notebook that logs them, and the report and results import them from here
instead of spelling them again; a test (tests/notebooks/test_metric_keys.py) finds every key declared
here written literally in a ``run.log(...)`` call of its notebook. Renaming a key in a notebook
therefore fails that test until the name here changes too, and every reader follows.

Each class below is one notebook: ``stem`` is its file name, every other attribute a key it logs
(the attribute's name is the key). Nested fields (a dict logged under one key) are listed apart.
"""


class Notebook:
    """A notebook's stem and the keys of its ``metrics.json`` that the lab reads."""

    stem = ""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The metric keys declared for this notebook."""
        return tuple(v for k, v in vars(cls).items() if not k.startswith("_") and k != "stem" and isinstance(v, str))

    @classmethod
    def number(cls) -> str:
        return cls.stem[:2]


class NB00(Notebook):
    stem = "00_data_and_tools"


class NB01(Notebook):
    stem = "01_mae_baseline"
    probe_pixels = "probe_pixels"
    probe_random_encoder = "probe_random_encoder"
    probe_normpix = "probe_normpix"
    probe_rawpix = "probe_rawpix"


class NB02(Notebook):
    stem = "02_vqgan_tokenizer"
    psnr_test = "psnr_test"
    psnr_reconstruction_baseline = "psnr_reconstruction_baseline"
    codebook_usage_test = "codebook_usage_test"
    perplexity_test = "perplexity_test"
    codebook_usage_test_plain = "codebook_usage_test_plain"
    perplexity_test_plain = "perplexity_test_plain"


class NB03(Notebook):
    stem = "03_mage_variable_masking"
    budgets = "budgets"  # {model: {"epochs", "steps", "batch_size", ...}} (config.budgets)
    masked_acc = "masked_acc"
    masked_acc_baseline = "masked_acc_baseline"
    mode_share = "mode_share"
    mode_share_true = "mode_share_true"
    mode_share_other_padding = "mode_share_other_padding"
    masked_similarity = "masked_similarity"
    masked_similarity_other_padding = "masked_similarity_other_padding"
    probe_mage = "probe_mage"
    probe_mae = "probe_mae"
    probe_blocks_mage = "probe_blocks_mage"  # {"block_k": probe}
    probe_blocks_mae = "probe_blocks_mae"
    probe_random_encoder = "probe_random_encoder"
    probe_bag_of_codes = "probe_bag_of_codes"
    probe_code_vectors = "probe_code_vectors"
    probe_mage_fixed075 = "probe_mage_fixed075"
    probe_mage_other_padding = "probe_mage_other_padding"
    fd_classifier_test_acc = "fd_classifier_test_acc"
    fd_classifier_mage = "fd_classifier_mage"
    fd_classifier_untrained = "fd_classifier_untrained"
    fd_classifier_recon = "fd_classifier_recon"
    fd_classifier_real = "fd_classifier_real"
    fd_classifier_fixed075 = "fd_classifier_fixed075"
    fd_classifier_other_padding = "fd_classifier_other_padding"
    kid_mage = "kid_mage"
    kid_untrained = "kid_untrained"
    kid_real = "kid_real"
    kid_fixed075 = "kid_fixed075"
    kid_other_padding = "kid_other_padding"
    generation_noise = "generation_noise"  # the fields of GenerationNoise


class GenerationNoise:
    """The fields of ``NB03.generation_noise`` (FDReference.sampling_noise in mage_eval): one model's spread over
    sampling seeds, and that spread as a share of the untrained-to-real gap."""

    fd_std = "fd_std"
    kid_std = "kid_std"
    fd_ratio = "fd_ratio"
    kid_ratio = "kid_ratio"


class NB04(Notebook):
    stem = "04_contrastive_cotraining"
    probe_mage = "probe_mage"
    probe_mage_c = "probe_mage_c"
    probe_mage_crop08 = "probe_mage_crop08"
    knn_mage = "knn_mage"
    knn_mage_c = "knn_mage_c"
    contrastive_loss_first = "contrastive_loss_first"
    contrastive_loss_last = "contrastive_loss_last"
    view_match_first = "view_match_first"
    view_match_last = "view_match_last"
    rec_loss_last_mage = "rec_loss_last_mage"
    rec_loss_last_mage_c = "rec_loss_last_mage_c"
    fd_classifier_mage = "fd_classifier_mage"
    fd_classifier_mage_c = "fd_classifier_mage_c"
    fd_classifier_mage_crop08 = "fd_classifier_mage_crop08"
    fd_classifier_views = "fd_classifier_views"
    fd_classifier_views_crop08 = "fd_classifier_views_crop08"


class NB05(Notebook):
    stem = "05_quantization_shortcut"
    neighbour_r2_continuous = "neighbour_r2_continuous"
    neighbour_r2_quantized = "neighbour_r2_quantized"
    loss_last_tokens = "loss_last_tokens"
    loss_last_continuous = "loss_last_continuous"
    masked_acc_tokens = "masked_acc_tokens"
    masked_acc_continuous = "masked_acc_continuous"
    masked_nll_tokens = "masked_nll_tokens"
    masked_nll_continuous = "masked_nll_continuous"
    masked_p_true_tokens = "masked_p_true_tokens"
    masked_p_true_continuous = "masked_p_true_continuous"
    probe_tokens = "probe_tokens"
    probe_continuous = "probe_continuous"


NOTEBOOKS: tuple[type[Notebook], ...] = (NB00, NB01, NB02, NB03, NB04, NB05)  # the course, in order
STEMS: dict[str, str] = {nb.number(): nb.stem for nb in NOTEBOOKS}  # {"00": "00_data_and_tools", ...}
