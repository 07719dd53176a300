"""mage-lite: a scaled-down, faithful reproduction of MAGE (MAsked Generative Encoder) on CIFAR-10."""

__version__ = "0.1.0"
