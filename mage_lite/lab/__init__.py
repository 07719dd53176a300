"""The lab: what runs and publishes the course's notebooks and the project's experiments (the runner, the
ablation report, benchmarks, the README's rendered blocks). It imports the course (mage_lite's top-level
modules); the course never imports it. Every command is ``python -m mage_lite <verb>`` (docs/map.md)."""
