"""Quickstart: train a 2-bit GNAQ LightGCN on the synthetic dataset, export it, recommend from the file.

    python examples/quickstart.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

from gnaq import edge
from gnaq.export import export_model
from gnaq.training import TrainConfig, Trainer

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="gnaq-quickstart-"))
config = TrainConfig(dataset="synthetic", bits=2, quantizer="gnaq", dim=32, layers=2, epochs=10,
                     batch_size=512, lr=0.01, out=str(out), progress=False)
trainer = Trainer(config)
result = trainer.fit(on_eval=lambda r: print(f"epoch {r['epoch']:2d}  loss {r['loss']:.4f}  "
                                             f"valid recall@20 {r['recall@20']:.4f}"))
print(f"test recall@20 {result['test_recall@20']:.4f}  ndcg@20 {result['test_ndcg@20']:.4f}")

info = export_model(trainer.model, trainer.data, out / "model.gnaq")
print(f"exported {out / 'model.gnaq'}: {info['file_bytes']:,} bytes "
      f"(embeddings {info['embedding_bytes']:,} bytes for {trainer.data.n_nodes} nodes)")

model = edge.load(out / "model.gnaq")
user = int(trainer.data.user_ids[0])
print(f"top-5 for user {user} ({model.backend} backend):")
for item, score in model.recommend(user, k=5):
    print(f"  item {item}  score {score:.4f}")
