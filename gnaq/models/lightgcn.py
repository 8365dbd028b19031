"""LightGCN (He et al., SIGIR 2020) on gnaq's autograd, with a pluggable quantizer.

    E⁽⁰⁾ ∈ ℝ^{N×d} (users then items),  E⁽ˡ⁺¹⁾ = Â E⁽ˡ⁾ (l < L),  Â: (N, N) CSR
    z = quantizer.combine([E⁽⁰⁾ … E⁽ᴸ⁾])   full precision: z = Σₗ αₗ E⁽ˡ⁾, αₗ = 1/(L+1)
    ŷᵤᵢ = zᵤ · zᵢ
    loss = −mean_b log σ(ŷᵤₚ − ŷᵤₙ) + reg · ½ (‖E⁽⁰⁾ᵤ‖² + ‖E⁽⁰⁾ₚ‖² + ‖E⁽⁰⁾ₙ‖²) / B

A quantizer may run the propagation itself (GNAQ's quantized messages and refined intervals):
the model asks ``quantizer.represent()`` for z.
"""

from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..backend import array_module, to_device
from ..quant.base import weighted_sum
from ..comm import SingleProcess, all_sum, gather_columns
from .whole import WholeView


def initial_table(n: int, dim: int, seed: int, std: float = 0.1, dtype=np.float32) -> np.ndarray:
    """E⁽⁰⁾ ~ N(0, std²) (n, dim), from ``seed`` alone (so every rank of a sliced run draws the same)."""
    return np.random.default_rng(seed).normal(0.0, std, size=(n, dim)).astype(dtype)


class LightGCN:
    """``comm`` (gnaq.comm, feature-sliced training): this model holds its rank's ``dim`` columns;
    scores' dot products and the L2 term are summed over ranks (comm.all_sum), and
    ``final_embeddings`` gathers every column. A quantizer is set up on a WholeView of every
    column (models/whole.py); once it is active, scores are computed on whole rows, the same on
    every rank (``replicated``)."""

    def __init__(self, n_users: int, n_items: int, norm_adj, dim: int = 64, n_layers: int = 3,
                 quantizer=None, seed: int = 0, init_std: float = 0.1, device: str = "cpu",
                 dtype=np.float32, init_embedding=None, comm=None):
        from ..quant.base import FullPrecision
        if dim <= 0 or n_layers < 0:
            raise ValueError(f"need dim > 0 and n_layers ≥ 0, got dim={dim}, n_layers={n_layers}")
        self.n_users, self.n_items = n_users, n_items
        self.dim, self.n_layers, self.device = dim, n_layers, device
        self.norm_adj = norm_adj
        self.comm = comm or SingleProcess()
        if init_embedding is None:
            init = initial_table(n_users + n_items, dim, seed, init_std, dtype)
        else:  # E⁽⁰⁾ of a trained model: the quantizer's setup below initialises from it
            init = np.asarray(init_embedding, dtype=dtype)
            if init.shape != (n_users + n_items, dim):
                raise ValueError(f"init_embedding has shape {init.shape}, expected {(n_users + n_items, dim)}")
        self.embedding = ag.Tensor(to_device(init, device), requires_grad=True, name="embedding")
        self.quantizer = quantizer if quantizer is not None else FullPrecision()
        sliced_quantizer = self.comm.size > 1 and not isinstance(self.quantizer, FullPrecision)
        self.quantizer.setup(WholeView(self) if sliced_quantizer else self)

    @property
    def xp(self):
        return array_module(self.device)

    @property
    def layer_weights(self):
        return [1.0 / (self.n_layers + 1)] * (self.n_layers + 1)

    def parameters(self) -> list:
        return [self.embedding] + self.quantizer.parameters()

    def layers(self) -> list:
        """[E⁽⁰⁾, …, E⁽ᴸ⁾] as Tensors."""
        out = [self.embedding]
        current = self.embedding
        for layer in range(self.n_layers):
            current = ag.spmm(self.norm_adj, current, A_T=self.norm_adj)
            out.append(current)
        return out

    @property
    def replicated(self) -> bool:
        """Whether z is computed whole on every rank (a sliced run's active quantizer), not sliced."""
        return self.comm.size > 1 and self.quantizer.active and isinstance(self.quantizer.model, WholeView)

    def representation(self):
        """z: (N, d) Tensor, what scores are computed from (quantized when a quantizer is set);
        under mpiexec this rank's columns, or every column when ``replicated``."""
        if self.comm.size > 1 and isinstance(self.quantizer.model, WholeView) and not self.quantizer.active:
            return weighted_sum(self.layers(), self.layer_weights)  # a warm-up's full precision, sliced
        return self.quantizer.represent()

    def bpr_loss(self, users, pos_items, neg_items, reg: float, teacher=None, distill: float = 0.0,
                 sampled=None, rng=None):
        """Returns (total, bpr, l2) Tensors for one batch of (user, positive, negative) indices.

        ``teacher`` (N, d) array z_t of a trained model and ``distill`` λ > 0 add score
        distillation on the batch's pairs: λ · mean_b[(ŷᵤₚ − ŷᵗᵤₚ)² + (ŷᵤₙ − ŷᵗᵤₙ)²].
        ``sampled`` (a sampled.SampledPropagation) computes only the batch's rows of z, from
        random walks drawn with ``rng``, and quantizes them row by row (``represent_rows``).
        """
        n_users = self.n_users
        replicated = self.replicated
        xp, b = self.xp, len(users)
        triples = xp.concatenate([users, pos_items + n_users, neg_items + n_users])  # (3B,) node rows
        nodes = tuple(triples[i * b:(i + 1) * b] for i in range(3))  # user, positive, negative rows
        if sampled is None:
            z, rows = self.representation(), nodes  # the triples' rows of z
        else:
            targets, where, counts = xp.unique(triples, return_inverse=True, return_counts=True)  # popular items repeat
            where = where.ravel()
            if self.quantizer.needs_layers and self.quantizer.active:  # it quantizes each layer's rows
                z_rows = self.quantizer.represent_layer_rows(sampled.layer_rows(targets, rng, counts=counts), targets)
            else:
                z_rows = sampled.rows(targets, rng, counts=counts)
                if replicated:  # the quantizer reads whole rows
                    z_rows = gather_columns(z_rows, self.comm)
                z_rows = self.quantizer.represent_rows(z_rows, targets)
            z, rows = z_rows, tuple(where[i * b:(i + 1) * b] for i in range(3))
        comm = SingleProcess() if replicated else self.comm  # replicated: whole rows, no sum over ranks
        margin = all_sum(ag.bpr_margin(z, *rows), comm)  # zᵤ·(zₚ − zₙ), one fused pass (gnaq/margins.py)
        bias = self.quantizer.item_bias
        if bias is not None:  # ŷᵤᵢ = zᵤ·zᵢ + bᵢ: the margin gains b_p − b_n (replicated, added once)
            margin = margin + ag.sum(ag.gather(bias, pos_items) - ag.gather(bias, neg_items), axis=1)
        bpr = -ag.mean(ag.log_sigmoid(margin))
        if self.quantizer.ego_is_embedding or not self.quantizer.active:  # E⁽⁰⁾'s rows: sliced, summed
            ego, l2_comm = self.embedding, self.comm
        else:
            ego, l2_comm = self.quantizer.ego(), comm
        ego_rows = ag.gather(ego, triples)
        l2 = all_sum(ag.sum(ego_rows * ego_rows) * (0.5 / len(users)), l2_comm)
        total = bpr + l2 * reg if reg else bpr
        if distill and teacher is not None:  # the teacher's columns are this rank's too
            u, p, n = (ag.gather(z, idx) for idx in rows)
            t_u, t_p, t_n = (teacher[idx] for idx in nodes)
            t_pos, t_neg = comm.allreduce((t_u * t_p).sum(axis=1)), comm.allreduce((t_u * t_n).sum(axis=1))
            s_pos, s_neg = all_sum(ag.sum(u * p, axis=1), comm), all_sum(ag.sum(u * n, axis=1), comm)
            gap_pos, gap_neg = s_pos - t_pos, s_neg - t_neg
            total = total + ag.mean(gap_pos * gap_pos + gap_neg * gap_neg) * distill
        if self.quantizer.has_extra_loss:
            total = total + self.quantizer.extra_loss()
        return total, bpr, l2

    def final_embeddings(self):
        """(user_emb, item_emb) arrays of the representation, no graph recorded; with an item
        bias b, ([z_U, 1], [z_I, b]) (d + 1 columns), so that scores stay one product."""
        with ag.no_grad():
            z = self.representation().data
            if not self.replicated:
                z = self.comm.allgather_columns(z)
        users, items = z[: self.n_users], z[self.n_users:]
        bias = self.quantizer.item_bias
        if bias is not None:
            xp = self.xp
            users = xp.concatenate([users, xp.ones((len(users), 1), dtype=users.dtype)], axis=1)
            items = xp.concatenate([items, bias.data.astype(items.dtype)], axis=1)
        return users, items

    def state_dict(self) -> dict:
        state = {"embedding": self.embedding.data}
        state.update({f"quant.{k}": v for k, v in self.quantizer.state_dict().items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.embedding.data[...] = self.xp.asarray(state["embedding"])
        self.quantizer.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("quant.")})
