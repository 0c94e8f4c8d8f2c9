"""Activation checkpointing of the joint blocks, applied from outside the model as torchtitan applies it:
each `model.blocks[i]` is wrapped so that its activations are recomputed in the backward pass instead of
stored (non-reentrant, so ZeRO-3 refetches the weights it needs). The joint blocks own no parameters, so the
wrapper changes no parameter name."""
from __future__ import annotations

from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper


def apply_activation_checkpointing(model: nn.Module) -> None:
    for i, block in enumerate(model.blocks):
        model.blocks[i] = checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
