"""An independent LightGCN in PyTorch, written the way the widely used PyTorch port does it
(torch.sparse COO graph, ``torch.sparse.mm`` full propagation per batch, mean of layers,
BPR via softplus, L2 on the batch's layer-0 rows, Adam). Bench-only: never imported by gnaq.

It takes the same initial embeddings and the same BPR triplets (gnaq.sampling, same seed) as
gnaq, so the two runs differ only by floating-point rounding, and it is evaluated with
gnaq.metrics. Requires ``pip install torch``.

    python bench/reference_torch.py --dataset ml-1m --epochs 10 --lr 0.005 [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir  # noqa: E402

import torch  # noqa: E402


class TorchLightGCN(torch.nn.Module):
    def __init__(self, n_users, n_items, norm_adj, dim=64, n_layers=3, init=None, device="cpu", layout="coo"):
        """layout: "coo" (the PyTorch port's torch.sparse COO tensor) or "csr" (a sparse CSR tensor,
        the fastest sparse product PyTorch offers on a CPU; same math)."""
        super().__init__()
        self.n_users, self.n_layers = n_users, n_layers
        coo = norm_adj.tocoo()
        index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        self.graph = torch.sparse_coo_tensor(index, torch.from_numpy(coo.data.astype(np.float32)),
                                             coo.shape, check_invariants=False).coalesce().to(device)
        if layout == "csr":
            self.graph = self.graph.to_sparse_csr()
        elif layout != "coo":
            raise ValueError(f"layout must be 'coo' or 'csr', got {layout!r}")
        weight = torch.from_numpy(init) if init is not None else torch.randn(norm_adj.shape[0], dim) * 0.1
        self.embedding = torch.nn.Parameter(weight.clone().to(device))

    def computer(self):
        all_emb = self.embedding
        embs = [all_emb]
        for _ in range(self.n_layers):
            all_emb = torch.sparse.mm(self.graph, all_emb)
            embs.append(all_emb)
        return torch.stack(embs, dim=1).mean(dim=1)

    def bpr_loss(self, users, pos, neg, reg):
        z = self.computer()
        u, p, n = z[users], z[pos + self.n_users], z[neg + self.n_users]
        u0, p0, n0 = (self.embedding[i] for i in (users, pos + self.n_users, neg + self.n_users))
        reg_loss = 0.5 * (u0.norm(2).pow(2) + p0.norm(2).pow(2) + n0.norm(2).pow(2)) / float(len(users))
        bpr = torch.nn.functional.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
        return bpr + reg * reg_loss


def train_epoch(model, optimizer, triplets, batch_size, reg, device="cpu"):
    users, pos, neg = (torch.from_numpy(a).to(device) for a in triplets)
    total = 0.0
    n_batches = math.ceil(len(users) / batch_size)
    for b in range(n_batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        loss = model.bpr_loss(users[sl], pos[sl], neg[sl], reg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() if b % 20 == 0 or b == n_batches - 1 else 0.0
    return loss.item()


def main():
    from gnaq.data import load_dataset
    from gnaq.graph import normalized_adjacency
    from gnaq.metrics import evaluate
    from gnaq.models import LightGCN
    from gnaq.sampling import sample_bpr_epoch
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--reg", type=float, default=1e-4)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_dir(), download_missing=False)
    adj = normalized_adjacency(data.train)
    init = LightGCN(data.n_users, data.n_items, adj, args.dim, args.layers, seed=args.seed).embedding.data
    model = TorchLightGCN(data.n_users, data.n_items, adj, args.dim, args.layers, init=init)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    curve = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        loss = train_epoch(model, optimizer, sample_bpr_epoch(data.train, rng), args.batch_size, args.reg)
        seconds = time.perf_counter() - t0
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            with torch.no_grad():
                z = model.computer().numpy()
            split, mask = ("valid", data.train) if data.valid is not None else ("test", data.train)
            metrics = evaluate(z[:data.n_users], z[data.n_users:], mask, getattr(data, split))
            record = {"epoch": epoch, "last_batch_loss": loss, "split": split, "train_seconds": round(seconds, 2),
                      **{k: v for k, v in metrics.items() if k != "users"}}
            curve.append(record)
            print(json.dumps(record), flush=True)
    with torch.no_grad():
        z = model.computer().numpy()
    seen = data.train if data.valid is None else (data.train + data.valid).tocsr()
    test = evaluate(z[:data.n_users], z[data.n_users:], seen, data.test)
    result = {"framework": f"torch {torch.__version__}", "args": vars(args), "curve": curve,
              "final_test": {k: v for k, v in test.items() if k != "users"}}
    print(json.dumps({"final_test": result["final_test"]}))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
