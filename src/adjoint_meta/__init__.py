"""adjoint_meta: long-horizon meta-learning of model initializations (A-MAML and its competitors)."""
__version__ = "0.1.0"
