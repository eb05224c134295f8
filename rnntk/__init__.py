"""rnntk: train and analyse recurrent networks as models of the brain.

The methods are importable PyTorch APIs; ``rnntk <command>`` wraps each of them on one
shared engine (:mod:`rnntk.engine`: device, seeding, run folder, HDF5, checkpoints).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
