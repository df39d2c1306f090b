"""Per-image metrics and the Wilson interval."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tune_food.train.engine import evaluate, train_epoch


class Fixed(nn.Module):
    """Logits equal to the input: row i predicts argmax(x_i)."""

    def forward(self, x):
        return x


def test_accuracy_is_per_image_with_an_uneven_last_batch():
    # 5 images in batches of 2, 2, 1. Correct: batch 1 both, batch 2 none, batch 3 the one.
    # Per image: 3/5 = 0.6. A mean of batch means would say (1 + 0 + 1) / 3 = 0.667.
    x = torch.tensor([[5., 0.], [0., 5.], [5., 0.], [0., 5.], [5., 0.]])
    y = torch.tensor([0, 1, 1, 0, 0])
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    m = evaluate(Fixed(), loader)
    assert (m.correct, m.images) == (3, 5)
    assert m.acc == pytest.approx(0.6)
    per_image = nn.functional.cross_entropy(x, y, reduction="none")
    assert m.loss == pytest.approx(float(per_image.mean()), rel=1e-6)
    batch_mean = float(torch.stack([per_image[:2].mean(), per_image[2:4].mean(),
                                    per_image[4:].mean()]).mean())
    assert abs(m.loss - batch_mean) > 1e-3  # the two definitions really differ here
    # every image's probabilities and label, in loader order, the uneven last batch too
    kept = evaluate(Fixed(), loader, keep_probs=True)
    assert kept.probs.shape == (5, 2) and kept.labels.tolist() == y.tolist()
    assert torch.equal(kept.probs, x.softmax(dim=1))


def test_train_epoch_counts_every_image_once():
    torch.manual_seed(0)
    head = nn.Linear(4, 3)
    x, y = torch.randn(11, 4), torch.randint(0, 3, (11,))
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    m = train_epoch(head, loader, torch.optim.SGD(head.parameters(), lr=0.0), nn.CrossEntropyLoss())
    assert m.images == 11
    with torch.no_grad():  # lr = 0: the weights did not move, so per-image loss is exact
        expected = nn.functional.cross_entropy(head(x), y)
    assert m.loss == pytest.approx(float(expected), rel=1e-6)





def test_optional_checkpoints_cost_at_most_a_tenth_of_a_trial():
    from tune_food.train.trainable import CheckpointTimer

    timer = CheckpointTimer(every_s=1.0, share=0.1, now=100.0)
    assert not timer.due(100.9) and timer.due(101.0)     # cheap checkpoints: the 1 s timer
    timer.saved(101.0, 101.01)
    assert not timer.due(101.9) and timer.due(102.01)
    timer.saved(110.0, 115.0)   # a 5 s checkpoint (a Food-101-sized predictions.csv)
    assert not timer.due(159.9) and timer.due(160.0)    # 9 x 5 s later: 5 of every 50 s
