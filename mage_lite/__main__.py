"""The one entry point of every command: ``python -m mage_lite <verb> [arguments]``.

Each verb forwards its arguments to the ``main(argv)`` of a module of the lab (mage_lite/lab/);
``python -m mage_lite <verb> --help`` shows that command's own options.
"""

import importlib
import sys

# verb -> (module whose main(argv) runs it, what it does in one line, whether the verb itself is passed on)
VERBS = {
    "lab": ("mage_lite.lab.notebook_hygiene", "open the course in JupyterLab (saving a notebook keeps its inputs, not its outputs)", False),
    "run": ("mage_lite.lab.runner", "execute the course notebooks with papermill (--preset, --only, --pretrained, ...)", True),
    "publish": ("mage_lite.lab.runner", "copy a finished run's metrics, figures and notebooks to reports/<preset>/", True),
    "list": ("mage_lite.lab.runner", "list the course notebooks", True),
    "report": ("mage_lite.lab.report.__main__", "the ablation report: notebooks 03-05 over a grid of arms and seeds", False),
    "results": ("mage_lite.lab.results", "render the README's course map and headline, and docs/results.md, from the published runs", False),
    "train": ("mage_lite.lab.train_preset", "train a preset's main models without Jupyter and export them as weight shards", False),
    "pretrained": ("mage_lite.lab.pretrained", "export the shipped weights, or compare a --pretrained run with the published one", False),
    "bench": ("mage_lite.lab.bench", "time the models' training steps at the presets' sizes", False),
    "bench-threads": ("mage_lite.lab.bench_threads", "measure threads per job: one notebook alone, the report's two workers", False),
    "design-check": ("mage_lite.lab.design_check", "train the design arms (tokenizer, codebook, decoder position) and measure MAGE", False),
    "bank-check": ("mage_lite.lab.bank_check", "MAGE trained from the token bank against tokenizing on the fly", False),
    "budget-curve": ("mage_lite.lab.budget_curve", "probe and generation metrics against the training budget", False),
    "generation-study": ("mage_lite.lab.generation_study", "generation on cached models: the ladder, decoding settings, the first step", False),
    "config": ("mage_lite.lab.budget_table", "render the table of every preset's training budgets (docs/results.md)", False),
}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: python -m mage_lite <verb> [arguments]   (python -m mage_lite <verb> --help for its options)", "",
             "verbs:"]
    lines += [f"  {verb:<{width}}  {line}" for verb, (_, line, _) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"error: no verb {verb!r}; choose one of {', '.join(VERBS)} (python -m mage_lite --help)", file=sys.stderr)
        return 2
    module, _, keep_verb = VERBS[verb]
    return importlib.import_module(module).main([verb, *rest] if keep_verb else rest)


if __name__ == "__main__":
    sys.exit(main())
