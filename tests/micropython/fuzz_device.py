# The fuzz check on the device's interpreter (MicroPython or CPython): every file in a folder must load
# and score consistently (recommend best first, score() equal to recommend's scores) or raise
# EdgeFormatError; anything else — MemoryError from a lying header included — is a crash, printed.
# Prints one JSON line of counts. main(folder) is called by the test.
import json
import os


def check(edge, path, backend="auto"):
    """Load and score with the reader module ``edge``; AssertionError if the scores are inconsistent.
    (Also tests/edge_fuzz.py's check, on the desktop backends.)"""
    model = edge.load(path, backend)
    if model.n_users == 0:  # an item-only file: fold a user in (computing Ḡ when the file has none)
        top = model.recommend_for_items(model.item_ids[:3], k=5)
        scores = [s for _, s in top]
        assert scores == sorted(scores, reverse=True), "recommend_for_items is not best first"
        return
    user = model.user_ids[0]
    top = model.recommend(user, k=5, exclude_seen=model.has_history)
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True), "recommend is not best first"
    assert model.score(user, [item for item, _ in top]) == scores, "score() disagrees with recommend()"


def main(folder):
    import edge
    counts = {"loaded": 0, "refused": 0, "crashed": 0}
    for name in sorted(os.listdir(folder)):
        try:
            check(edge, folder + "/" + name)
            counts["loaded"] += 1
        except edge.EdgeFormatError:
            counts["refused"] += 1
        except Exception as exc:  # the point of the fuzzer
            counts["crashed"] += 1
            print("crashed", name, repr(exc))
    print(json.dumps(counts))
