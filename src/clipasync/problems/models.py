"""Small PyTorch models for the paper-reproduction experiments.

Sized so that one forward+backward takes milliseconds on a CPU core, which keeps a
16-worker simulation with tens of thousands of oracle calls affordable:

- :class:`SmallCNN`: the paper's "two-layer CNN" (Figure 4) scaled to 1x28x28 inputs.
  With the defaults (``width=16, hidden=64``) it has 114,314 parameters.
- :class:`CharLSTM`: next-character LSTM with dropout 0.2 (Figure 3).
  ``CharLSTM(63, embed_dim=16, hidden=128, num_layers=1)`` (the defaults, 63-char
  KJV vocabulary) has 83,887 parameters; ``num_layers=2``: 215,983.
- :class:`MLP`: fully connected network, mostly for tests and toy problems.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clipasync.errors import ConfigError


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Return ``build()`` with its initial weights drawn from ``seed`` only.

    Torch's global random state is left as it was: the CPU generator is forked and
    reseeded through ``torch.default_generator`` (``torch.manual_seed`` would also
    reseed every CUDA generator, which ``fork_rng(devices=[])`` does not restore).
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return build()


class SmallCNN(nn.Module):
    """Two 5x5 conv layers + two fully connected layers for 28x28 images.

    Layout (``w = width``, input (B, C, 28, 28))::

        conv5x5(C -> w, pad 2) -> ReLU -> maxpool2    (B, w, 14, 14)
        conv5x5(w -> 2w, pad 2) -> ReLU -> maxpool2   (B, 2w, 7, 7)
        flatten -> linear(98w -> hidden) -> ReLU -> linear(hidden -> classes)

    Parameter counts (C = 1, 10 classes; see :func:`count_parameters`):
    width 8 / hidden 32: 28,874; width 16 / hidden 64: 114,314 (default);
    width 32 / hidden 64: 253,514; width 32 / hidden 128: 454,922. With
    ``hidden=0`` the flattened features go straight to the classifier
    (width 16: 28,938).

    Args:
        width: Channels of the first conv layer (the second has ``2 * width``).
        hidden: Width of the hidden fully connected layer; 0 removes it.
        num_classes: Number of output logits.
        in_channels: Input channels (1 for Fashion-MNIST).
    """

    def __init__(
        self,
        width: int = 16,
        hidden: int = 64,
        num_classes: int = 10,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if width < 1 or hidden < 0 or num_classes < 1 or in_channels < 1:
            raise ConfigError(
                f"SmallCNN needs width >= 1, hidden >= 0, num_classes >= 1, "
                f"in_channels >= 1; got {width}, {hidden}, {num_classes}, {in_channels}"
            )
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=5, padding=2)
        features = 2 * width * 7 * 7
        head: list[nn.Module] = []
        if hidden:
            head += [nn.Linear(features, hidden), nn.ReLU()]
            features = hidden
        head.append(nn.Linear(features, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (B, C, 28, 28) to logits (B, num_classes)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        out: torch.Tensor = self.head(torch.flatten(x, 1))
        return out


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> dropout -> linear: next-token logits at every position.

    Args:
        vocab_size: Number of tokens V.
        embed_dim: Embedding dimension.
        hidden: LSTM hidden size.
        num_layers: Stacked LSTM layers.
        dropout: Dropout probability applied to the LSTM output (and between LSTM
            layers when ``num_layers > 1``); the paper uses 0.2.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 16,
        hidden: int = 128,
        num_layers: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if vocab_size < 1 or embed_dim < 1 or hidden < 1 or num_layers < 1:
            raise ConfigError(
                "CharLSTM needs vocab_size, embed_dim, hidden, num_layers >= 1; got "
                f"{vocab_size}, {embed_dim}, {hidden}, {num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map int64 tokens (B, L) to logits (B, L, V) (zero initial state)."""
        h, _ = self.lstm(self.embed(tokens))
        logits: torch.Tensor = self.out(self.drop(h))
        return logits


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every token: logits (..., V), targets (...) int64.

    ``exp`` of it is the per-character perplexity.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class MLP(nn.Module):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` with ReLU in between.

    Inputs are flattened from dimension 1, so images can be fed directly.

    Args:
        sizes: Layer widths, at least two (input and output).
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ConfigError(f"MLP needs >= 2 positive sizes, got {list(sizes)}")
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(fan_in, fan_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, ...) inputs with prod(...) == sizes[0] to (B, sizes[-1])."""
        out: torch.Tensor = self.net(torch.flatten(x, 1))
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
