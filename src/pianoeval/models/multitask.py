"""Multi-task quality model: one trunk trained on T1 (regression) and, optionally, T2 (ordinal pairs), T3
(contrastive windows) and T4 (augmentation pairs) at once.

The network is the production :class:`~pianoeval.models.quality_mlp.QualityHead` (standardise -> hidden
blocks -> 19 sigmoid outputs) with a projection head on its last hidden layer for the contrastive term:

    pooled (B, 2D) -> standardise -> trunk = QualityHead.mlp[:-1] -> h (B, H)
        h -> QualityHead.mlp[-1] -> sigmoid -> ratings (B, 19)
        h -> projection (Linear H->H, GELU, Linear H->P) -> L2-normalised z (B, P)

So a fitted model's quality part is saved with ``save_checkpoint`` and loaded by ``load_checkpoint``
unchanged: masterclass Model B, the tier scoring and ``pianoeval score`` read multi-task checkpoints like
the T1 ones (same leakage metadata). The projection head is only used in training (saved beside it).

Loss per step (each term's weight in params; a weight of 0 switches the term off)::

    w1 * MSE(ratings, labels)                                     T1 mini-batch
  + w2 * mean softplus(-(overall_better - overall_worse) / tau2)   T2 pairs (overall = mean of the 19)
  + w3 * supervised InfoNCE over z at temperature tau3             T3 windows (positives: same bars,
                                                                   another performer; all others negatives)
  + w4 * MSE(ratings(augmented), ratings(clean).detach())          T4 pairs (the clean clip is the target)

Every step draws one T1 mini-batch and, for each active auxiliary term, its own mini-batch (T3: every
training window), all through one forward pass. Early stopping keeps the epoch with the best validation
mean R² on the T1 inner split (the product's task), as ``QualityMLP`` does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pianoeval.models.quality_mlp import QualityHead, _as_tensor
from pianoeval.regression_metrics import r2_per_dim

TERMS = ("t1", "t2", "t3", "t4")
HYPERPARAMETERS = ("hidden", "n_hidden_layers", "dropout", "projection_dim", "lr", "weight_decay", "batch_size",
                   "max_epochs", "patience", "grad_clip", "t2_pairs_per_step", "t2_temperature", "t3_temperature",
                   "t4_pairs_per_step", "seed")


@dataclass
class AuxData:
    """Auxiliary training items of one fold (pooled embeddings; any part may be empty).

    t2_better, t2_worse : (P, 2D) the two windows of each ordinal pair; ``better`` went further.
    t3_x : (M, 2D) T3 windows; t3_positive : (M, M) bool, True where j is the same bars as i by another
        performer (the diagonal is False); an anchor without a positive adds nothing.
    t4_clean, t4_aug : (Q, 2D) clean clip and its augmented version, one row per pair.
    """

    t2_better: np.ndarray | None = None
    t2_worse: np.ndarray | None = None
    t3_x: np.ndarray | None = None
    t3_positive: np.ndarray | None = None
    t4_clean: np.ndarray | None = None
    t4_aug: np.ndarray | None = None
    counts: dict = field(default_factory=dict)

    def n(self, term: str) -> int:
        """Training units of an auxiliary term: pairs (T2, T4) or anchors with a positive (T3)."""
        if term == "t2":
            return 0 if self.t2_better is None else len(self.t2_better)
        if term == "t3":
            return 0 if self.t3_positive is None else int(np.asarray(self.t3_positive).any(axis=1).sum())
        if term == "t4":
            return 0 if self.t4_clean is None else len(self.t4_clean)
        raise ValueError(f"unknown auxiliary term {term!r}")


class MultiTaskNet(nn.Module):
    """QualityHead + projection head. ``forward(pooled) -> (ratings (B, 19), hidden (B, H))``;
    ``project(hidden) -> z (B, P)``, L2-normalised (only the contrastive rows need it)."""

    def __init__(self, input_dim: int, n_outputs: int, hidden: int, n_hidden_layers: int, dropout: float,
                 projection_dim: int):
        super().__init__()
        self.quality = QualityHead(input_dim, n_outputs, hidden, n_hidden_layers, dropout)
        self.projection = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, projection_dim))

    def hidden(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, 2D) -> last hidden layer (B, H): the shared representation."""
        q = self.quality
        return q.mlp[:-1]((pooled - q.feature_mean) / q.feature_std)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(pooled)
        return torch.sigmoid(self.quality.mlp[-1](h)), h

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(h), dim=-1)


def ranking_loss(overall_better: torch.Tensor, overall_worse: torch.Tensor, temperature: float) -> torch.Tensor:
    """Pairwise logistic (RankNet) loss: softplus(-(better - worse) / temperature), mean over pairs (P,)."""
    return F.softplus(-(overall_better - overall_worse) / temperature).mean()


def contrastive_loss(z: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised InfoNCE: for each anchor with >= 1 positive, the mean over its positives of
    -log softmax(sim / temperature) over every other row; averaged over those anchors.

    z : (M, P) L2-normalised; positive : (M, M) bool (diagonal ignored).
    """
    m = z.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = positive & ~eye
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has])
    return per_anchor.mean()


def invariance_loss(pred_aug: torch.Tensor, pred_clean: torch.Tensor) -> torch.Tensor:
    """MSE between augmented and (detached) clean predictions: the clean clip is the target."""
    return F.mse_loss(pred_aug, pred_clean.detach())


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a CUDA device on a machine without one is a clear error."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}': CUDA is not available on this machine (use 'cpu')")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device '{device}': only cpu and cuda are supported")
    return dev


class MultiTaskQuality:
    """Trainer of :class:`MultiTaskNet` with early stopping on T1 validation R².

    Parameters
    ----------
    weights : {"t1", "t2", "t3", "t4"} -> loss weight (>= 0; 0 switches a term off; t1 must be > 0).
    hidden, n_hidden_layers, dropout, projection_dim : network shape.
    lr, weight_decay, batch_size, max_epochs, patience, grad_clip : AdamW + cosine schedule over
        ``max_epochs``; an epoch is one pass over the T1 fit rows in mini-batches of ``batch_size``.
    t2_pairs_per_step, t4_pairs_per_step : auxiliary pairs drawn (without replacement) per step.
    t2_temperature, t3_temperature : scales of the ranking and contrastive terms.
    seed : weight init, dropout, shuffling and auxiliary draws.
    device : torch device string.

    Attributes (after fit)
    ----------------------
    net_ : MultiTaskNet with the best-epoch weights (eval mode, on CPU).
    model_ : its QualityHead (what ``save_checkpoint`` writes).
    history_ : per epoch {"epoch", "lr", "val_r2", "loss", "loss_t1", ...} (mean over the epoch's steps).
    best_epoch_, n_epochs_, best_val_r2_ ; active_terms_ : the terms that had weight and data.
    """

    def __init__(self, weights: dict, *, hidden: int = 256, n_hidden_layers: int = 2, dropout: float = 0.2,
                 projection_dim: int = 64, lr: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 64,
                 max_epochs: int = 60, patience: int = 10, grad_clip: float = 1.0, t2_pairs_per_step: int = 16,
                 t2_temperature: float = 0.05, t3_temperature: float = 0.1, t4_pairs_per_step: int = 16,
                 seed: int = 0, device: str = "cpu"):
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise ValueError(f"weights: unknown terms {sorted(unknown)} (allowed: {', '.join(TERMS)})")
        if any(float(weights.get(t, 0.0)) < 0 for t in TERMS):
            raise ValueError(f"weights must be >= 0, got {weights}")
        if float(weights.get("t1", 0.0)) <= 0:
            raise ValueError("weights.t1 must be > 0: the 19-dimension head and early stopping rest on T1")
        self.weights = {t: float(weights.get(t, 0.0)) for t in TERMS}
        self.hidden, self.n_hidden_layers, self.dropout = hidden, n_hidden_layers, dropout
        self.projection_dim = projection_dim
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_epochs, self.patience, self.grad_clip = max_epochs, patience, grad_clip
        self.t2_pairs_per_step, self.t2_temperature = t2_pairs_per_step, t2_temperature
        self.t3_temperature, self.t4_pairs_per_step = t3_temperature, t4_pairs_per_step
        self.seed, self.device = seed, device

    def get_params(self) -> dict:
        return {**{k: getattr(self, k) for k in HYPERPARAMETERS}, "weights": dict(self.weights)}

    def fit(self, X, Y, X_val, Y_val, aux: AuxData | None = None) -> "MultiTaskQuality":
        """Train on T1 pooled vectors X (N, 2D), ratings Y (N, K), T1 validation rows (M, 2D)/(M, K) and the
        auxiliary items ``aux`` (terms without items or weight are off)."""
        dev = resolve_device(self.device)
        X, Yt = _as_tensor("X", X), _as_tensor("Y", Y)
        Xv = _as_tensor("X_val", X_val, X.shape[1])
        Yv = np.asarray(Y_val, dtype=np.float64)
        if X.shape[0] != Yt.shape[0] or Xv.shape[0] != Yv.shape[0]:
            raise ValueError(f"X/Y rows disagree: {X.shape[0]}/{Yt.shape[0]}, validation {Xv.shape[0]}/{Yv.shape[0]}")
        const = np.flatnonzero(Yv.std(axis=0) == 0)
        if const.size:
            raise ValueError(f"Y_val columns {const.tolist()} are constant: validation R² undefined")
        aux = aux or AuxData()
        d = X.shape[1]
        tensors = {name: _as_tensor(name, v, d).to(dev) for name, v in
                   (("t2_better", aux.t2_better), ("t2_worse", aux.t2_worse), ("t3_x", aux.t3_x),
                    ("t4_clean", aux.t4_clean), ("t4_aug", aux.t4_aug)) if v is not None and len(v)}
        active = ["t1"] + [t for t in ("t2", "t3", "t4") if self.weights[t] > 0 and aux.n(t) > 0]
        self.active_terms_ = active
        t3_pos = torch.as_tensor(np.asarray(aux.t3_positive, dtype=bool), device=dev) if "t3" in active else None

        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        net = MultiTaskNet(d, Yt.shape[1], self.hidden, self.n_hidden_layers, self.dropout, self.projection_dim)
        std = X.std(dim=0, unbiased=False)
        net.quality.feature_mean.copy_(X.mean(dim=0))
        net.quality.feature_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
        net.to(dev)
        X, Yt, Xv = X.to(dev), Yt.to(dev), Xv.to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay,
                                fused=dev.type == "cpu" or None)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs)

        n = X.shape[0]
        self.history_: list[dict] = []
        best_r2, best_state, self.best_epoch_ = -np.inf, None, 0
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen)
            sums = dict.fromkeys(["loss", *(f"loss_{t}" for t in active)], 0.0)
            n_steps = 0
            for s in range(0, n, self.batch_size):
                idx = perm[s:s + self.batch_size].to(dev)
                parts = {"t1": X[idx]}
                if "t2" in active:
                    p2 = _draw(len(tensors["t2_better"]), self.t2_pairs_per_step, gen).to(dev)
                    parts["t2_better"], parts["t2_worse"] = tensors["t2_better"][p2], tensors["t2_worse"][p2]
                if "t3" in active:
                    parts["t3"] = tensors["t3_x"]
                if "t4" in active:
                    p4 = _draw(len(tensors["t4_clean"]), self.t4_pairs_per_step, gen).to(dev)
                    parts["t4_clean"], parts["t4_aug"] = tensors["t4_clean"][p4], tensors["t4_aug"][p4]
                pred, h = net(torch.cat(list(parts.values())))  # one pass over every term's rows
                sizes = [len(v) for v in parts.values()]
                pred, h = dict(zip(parts, torch.split(pred, sizes))), dict(zip(parts, torch.split(h, sizes)))
                losses = {"t1": F.mse_loss(pred["t1"], Yt[idx])}
                if "t2" in active:
                    losses["t2"] = ranking_loss(pred["t2_better"].mean(1), pred["t2_worse"].mean(1),
                                                self.t2_temperature)
                if "t3" in active:
                    losses["t3"] = contrastive_loss(net.project(h["t3"]), t3_pos, self.t3_temperature)
                if "t4" in active:
                    losses["t4"] = invariance_loss(pred["t4_aug"], pred["t4_clean"])
                total = sum(self.weights[t] * v for t, v in losses.items())
                opt.zero_grad(set_to_none=True)
                total.backward()
                nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                opt.step()
                sums["loss"] += float(total.detach())
                for t, v in losses.items():
                    sums[f"loss_{t}"] += float(v.detach())
                n_steps += 1
            rec = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], **{k: v / n_steps for k, v in sums.items()}}
            sched.step()
            net.eval()
            with torch.no_grad():
                val_pred = net(Xv)[0].double().cpu().numpy()
            rec["val_r2"] = float(np.mean(r2_per_dim(Yv, val_pred)))
            self.history_.append(rec)
            if rec["val_r2"] > best_r2:
                best_r2, self.best_epoch_ = rec["val_r2"], epoch
                best_state = copy.deepcopy(net.state_dict())
            elif epoch - self.best_epoch_ >= self.patience:
                break
        net.load_state_dict(best_state)
        self.n_epochs_ = len(self.history_)
        self.best_val_r2_ = float(best_r2)
        self.net_ = net.cpu().eval()
        self.model_ = self.net_.quality
        return self

    def _check_fitted(self) -> QualityHead:
        if not hasattr(self, "net_"):
            raise ValueError("MultiTaskQuality is not fitted; call fit() first")
        return self.model_

    def predict(self, X) -> np.ndarray:
        """(N, 2D) pooled -> float64 ratings (N, K)."""
        return self._check_fitted().predict_pooled(X)

    @torch.no_grad()
    def representation(self, X, space: str = "trunk") -> np.ndarray:
        """(N, 2D) pooled -> float64 (N, H) last hidden layer (``trunk``: the shared representation) or
        (N, P) L2-normalised projection (``projection``: the space the contrastive term trains), eval mode."""
        self._check_fitted()
        h = self.net_.hidden(_as_tensor("X", X, self.model_.input_dim))
        if space == "projection":
            return self.net_.project(h).double().numpy()
        if space != "trunk":
            raise ValueError(f"space must be 'trunk' or 'projection', got {space!r}")
        return h.double().numpy()

    def projection_state(self) -> dict[str, np.ndarray]:
        """The projection head's weights as numpy arrays (``projection.<name>``)."""
        self._check_fitted()
        return {f"projection.{k}": v.detach().cpu().numpy() for k, v in self.net_.projection.state_dict().items()}


def _draw(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """k distinct indices of range(n) (all of them, shuffled, when k >= n)."""
    return torch.randperm(n, generator=gen)[:k]
