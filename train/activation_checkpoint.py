"""Activation checkpointing of the joint blocks, applied from outside the model: each block's activations
are recomputed in the backward pass instead of stored (non-reentrant, so ZeRO-3 refetches its weights)."""
from __future__ import annotations

import torch.utils.checkpoint
from torch import nn


def apply_activation_checkpointing(model: nn.Module) -> None:
    block = model.joint_block

    def checkpointed(i, xv, xa, inp):
        if not torch.is_grad_enabled():
            return block(i, xv, xa, inp)
        return torch.utils.checkpoint.checkpoint(block, i, xv, xa, inp, use_reentrant=False)

    model.joint_block = checkpointed
