"""What a quantizer sees of a feature-sliced LightGCN: every column, so it runs as in one process.

Under ``mpiexec -n W`` a rank's LightGCN holds d/W columns of E⁽⁰⁾ (comm.py). A quantizer's
statistics span a row — a node's RMS σ(Eₙ), transform coding's z·R, a codebook's distances — so
it is set up on a ``WholeView`` of the sliced model instead:

    view.embedding = gather(E⁽⁰⁾_r)                         (N, d), every rank the same
    view.layers()  = [gather(E⁽ˡ⁾_r) for l = 0 … L],  E⁽ˡ⁺¹⁾_r = Â E⁽ˡ⁾_r   sliced propagation

(``comm.gather_columns``: forward an allgather, backward this rank's columns). Every rank then
computes the quantizer's ẑ and the loss on whole rows identically, so its parameters get the
same gradient everywhere (no allreduce: they are replicated, as their Adam state is) and E⁽⁰⁾_r
gets its columns of the whole gradient. A quantizer that propagates itself (GNAQ's graph-aware
forward, layer-0 deployment, product quantization) propagates the gathered table on every rank:
exact, but only the full-precision phase and ``layers()`` divide the work by W.

``snapshot(model)`` is the one-process model of every column (collective: every rank calls it),
for export and queries, which rank 0 alone may run.
"""

from __future__ import annotations

from ..comm import SingleProcess, gather_columns


class WholeView:
    """The (N, d) model a quantizer reads, over ``sliced`` (a LightGCN holding d/W columns)."""

    def __init__(self, sliced):
        self.sliced = sliced
        self.n_users, self.n_items, self.n_layers = sliced.n_users, sliced.n_items, sliced.n_layers
        self.device, self.norm_adj = sliced.device, sliced.norm_adj
        self.dim = sliced.dim * sliced.comm.size
        self.comm = SingleProcess()  # what the quantizer computes is replicated, not sliced

    @property
    def xp(self):
        return self.sliced.xp

    @property
    def layer_weights(self):
        return self.sliced.layer_weights

    @property
    def embedding(self):
        """E⁽⁰⁾ (N, d) Tensor, gathered from every rank (a collective: every rank reads it alike)."""
        return gather_columns(self.sliced.embedding, self.sliced.comm)

    def layers(self) -> list:
        """[E⁽⁰⁾ … E⁽ᴸ⁾] (N, d) each, propagated on this rank's columns, then gathered."""
        return [gather_columns(layer, self.sliced.comm) for layer in self.sliced.layers()]


def snapshot(model):
    """A one-process LightGCN of every column of ``model`` (sliced or not) sharing its quantizer's
    parameters: what export and queries read. Collective under mpiexec; ``model`` itself in one process."""
    from ..quant.base import FullPrecision
    if model.comm.size == 1:
        return model
    whole = model.comm.allgather_columns(model.embedding.data)
    out = type(model)(model.n_users, model.n_items, model.norm_adj, whole.shape[1], model.n_layers, None,
                   device=model.device, init_embedding=whole)
    if not isinstance(model.quantizer, FullPrecision):
        out.quantizer = model.quantizer.bound_to(out)
    return out
