"""The one place that knows about processes: the communicator of feature-sliced training.

``mpiexec -n W python -m gnaq.train ...`` starts W ranks; each holds d/W contiguous columns of
every node's embedding and of its Adam moments (NeutronTP's tensor parallelism over the feature
dimension). Propagation Â·X acts on each column alone, so a rank propagates its slice with no
communication; what spans a row is summed over ranks:

    margin_b = Σ_r Σ_{k ∈ slice r} u_bk (p_bk − n_bk)      one allreduce of B floats a step
    l2 = Σ_r ½‖E_slice r‖² over the batch's rows            one float

and everything after the sum is replicated, so ∂loss/∂(rank r's partial) is the same on every
rank: the allreduce's backward is the identity. Evaluation and export gather the columns.

A quantizer's statistics span a row (a node's RMS, transform coding's rotation z·R, codebooks),
so once it is active the ranks gather what it reads (``gather_columns``: E⁽⁰⁾ or the propagated
layers, N·d/W floats a rank and a gather) and every rank repeats the quantizer and the loss on
whole rows: the same model as one process, the propagation still sliced where the quantizer asks
for ``model.layers()`` (models/whole.py). Sampled
propagation's random walks are divided by batch rows: every rank draws the same uniforms, walks from
its block of targets and the blocks are gathered (12 bytes a walk entry).

Without mpi4py, or in one process, ``world()`` is a SingleProcess whose collectives are the
identity, so the same code path runs everywhere.
"""

from __future__ import annotations

import os

import numpy as np

LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


class MPIUnavailable(RuntimeError):
    """Launched under mpiexec with several processes, but mpi4py does not import."""


class SingleProcess:
    rank, size, is_root = 0, 1, True
    bytes_sent = 0

    def allreduce(self, x):
        return x

    def allgather_columns(self, x):
        return x

    def allgather_rows(self, x):
        return x

    def bcast(self, obj):
        return obj

    def barrier(self) -> None:
        pass


class MPICommunicator:
    """mpi4py's COMM_WORLD behind the few collectives training needs; counts the bytes it sends."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.is_root = self.rank == 0
        self.bytes_sent = 0

    def allreduce(self, x):
        """Σ over ranks of a numpy array (a new array; float sums in MPI's order)."""
        from mpi4py import MPI
        shape = np.shape(x)
        x = np.ascontiguousarray(x).reshape(-1)  # (0-d arrays come back 0-d)
        out = np.empty_like(x)
        self.comm.Allreduce(x, out, op=MPI.SUM)
        self.bytes_sent += x.nbytes
        return out.reshape(shape)

    def allgather_columns(self, x):
        """(n, d/W) slices of every rank → (n, d), rank r's columns at r·d/W."""
        x = np.ascontiguousarray(x)
        out = np.empty((self.size,) + x.shape, dtype=x.dtype)
        self.comm.Allgather(x, out)
        self.bytes_sent += x.nbytes
        return np.concatenate(list(out), axis=1)

    def allgather_rows(self, x):
        """Equal-shaped (m, ...) blocks of every rank → (W·m, ...), rank r's block at r·m."""
        x = np.ascontiguousarray(x)
        out = np.empty((self.size,) + x.shape, dtype=x.dtype)
        self.comm.Allgather(x, out)
        self.bytes_sent += x.nbytes
        return out.reshape((self.size * x.shape[0],) + x.shape[1:])

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()


def launched_size() -> int:
    """How many processes the launcher says this job has (1 when not under mpiexec)."""
    for name in LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def world():
    """The job's communicator: MPI's when launched with more than one process, else SingleProcess."""
    size = launched_size()
    if size <= 1:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        raise MPIUnavailable(f"launched under mpiexec with {size} processes, but mpi4py is not installed: "
                           "pip install -e \".[mpi]\" (mpi4py and an MPI wheel such as mpich)") from None
    return MPICommunicator(MPI.COMM_WORLD) if MPI.COMM_WORLD.Get_size() > 1 else SingleProcess()


def column_slice(dim: int, comm) -> slice:
    """This rank's contiguous columns of a d-dimensional embedding; W must divide d."""
    if dim % comm.size:
        raise ValueError(f"--dim {dim} cannot be split over {comm.size} processes: use a process count that "
                         f"divides it (e.g. {', '.join(str(w) for w in range(1, min(dim, 64) + 1) if dim % w == 0)})")
    width = dim // comm.size
    return slice(comm.rank * width, (comm.rank + 1) * width)


def gather_columns(x, comm):
    """Differentiable allgather of every rank's (n, d/W) Tensor into the (n, d) whole, for what
    each rank then computes identically (a quantizer, the loss on whole rows). Backward: this
    rank's columns of the gradient — replicated computation gives every rank the whole gradient,
    so the adjoint of the gather is the slice, with no communication."""
    from . import autograd as ag
    x = ag.as_tensor(x)
    if comm.size == 1:
        return x
    columns = column_slice(x.shape[1] * comm.size, comm)
    return ag.custom_op([x], comm.allgather_columns(x.data), lambda g: [g[:, columns]])


def all_sum(x, comm):
    """Differentiable Σ over ranks of a Tensor's partials; backward: the identity (the sum is used
    identically on every rank, so each partial's gradient is the replicated gradient of the sum)."""
    from . import autograd as ag
    x = ag.as_tensor(x)
    if comm.size == 1:
        return x
    return ag.custom_op([x], comm.allreduce(x.data), lambda g: [g])
