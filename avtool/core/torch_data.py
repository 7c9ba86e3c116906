"""The torch view of a feature store (kept apart so the store itself never imports torch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from avtool.core.store import FeatureStore


class StoreDataset(Dataset):
    """Items of a FeatureStore as tensors; with `labels`, (tensor, label) pairs."""

    def __init__(
        self, store: FeatureStore, keys: list[str], labels: Mapping[str, Any] | None = None
    ) -> None:
        self.store = store
        self.keys = keys
        self.labels = labels

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int):
        item_id = self.keys[index]
        features = torch.from_numpy(self.store[item_id]).float()
        if self.labels is None:
            return features
        return features, self.labels[item_id]
