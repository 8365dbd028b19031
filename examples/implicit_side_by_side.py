"""gnaq beside an implicit model, evaluated by implicit's own evaluator on the same split.

    pip install implicit          # a bench/example extra: gnaq itself never imports it
    python examples/implicit_side_by_side.py [--data-dir DIR]   # lastfm if found, else synthetic

``implicit.evaluation.ranking_metrics_at_k(model, train, test, K)`` calls
``model.recommend(userids, train[userids], N=K)`` and reads the ids as int32: a fitted
``gnaq.Recommender`` answers that call as implicit's models do, so the same evaluator ranks both.
"""

import argparse
import time

import numpy as np
from implicit.bpr import BayesianPersonalizedRanking
from implicit.evaluation import ranking_metrics_at_k

import gnaq
from gnaq.data import DataError, load_dataset, make_synthetic

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default="../shared/datasets/lightgcnpp")
args = p.parse_args()
try:
    data = load_dataset("lastfm", data_dir=args.data_dir, download_missing=False, progress=False)
except DataError:
    data = make_synthetic(seed=0)
train = (data.train + data.valid).tocsr() if data.valid is not None else data.train
test = data.test
print(f"{data.name}: {train.shape[0]} users × {train.shape[1]} items, {train.nnz:,} train / {test.nnz:,} test")

models = {
    "implicit BPR (factors 63)": BayesianPersonalizedRanking(factors=63, iterations=100, random_state=0),
    "gnaq 2-bit": gnaq.Recommender(bits=2, progress=False),
}
for name, model in models.items():
    t0 = time.perf_counter()
    model.fit(train, show_progress=False)  # the same call for both
    seconds = time.perf_counter() - t0
    metrics = ranking_metrics_at_k(model, train, test, K=20, show_progress=False)
    ids, _ = model.recommend(np.arange(3), train[:3], N=5)
    print(f"{name:28s} fit {seconds:6.1f} s   precision@20 {metrics['precision']:.4f}   "
          f"ndcg@20 {metrics['ndcg']:.4f}   map@20 {metrics['map']:.4f}   ids {ids.dtype}")
