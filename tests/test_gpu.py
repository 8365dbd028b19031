"""CPU vs GPU parity and GPU gradient checks; skipped cleanly where cupy or a CUDA device is missing."""

import numpy as np
import pytest

from gnaq import backend

pytestmark = pytest.mark.skipif(not backend.cuda_available(),
                                reason="needs cupy and a CUDA device (pip install cupy-cuda12x)")


def _trainer(device, bits, tmp_path, quantizer="gnaq"):
    from gnaq.data import make_synthetic
    from gnaq.training import TrainConfig, Trainer
    data = make_synthetic(seed=0)
    options = {"warmup": 0} if quantizer == "gnaq" and bits != 32 else {}  # quantized from the first step
    cfg = TrainConfig(bits=bits, quantizer=quantizer, quant_options=options, dim=16, layers=2, epochs=1, batch_size=256, lr=0.01,
                      progress=False, device=device, out=str(tmp_path / device))
    return Trainer(cfg, data)


@pytest.mark.parametrize("bits, quantizer", [(32, "gnaq"), (2, "gnaq"), (2, "lsq"), (2, "n2uq"), (1, "bigear")])
def test_first_epoch_loss_and_top_k_match_the_cpu(tmp_path, bits, quantizer):
    cpu, gpu = _trainer("cpu", bits, tmp_path, quantizer), _trainer("cuda", bits, tmp_path, quantizer)
    loss_cpu, loss_gpu = cpu.train_epoch(), gpu.train_epoch()
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-4)
    from gnaq.metrics import top_k_items
    u_cpu, i_cpu = cpu.model.final_embeddings()
    u_gpu, i_gpu = gpu.model.final_embeddings()
    top_cpu = top_k_items(u_cpu[:50] @ i_cpu.T, 10)
    top_gpu = backend.to_numpy(top_k_items(u_gpu[:50] @ i_gpu.T, 10))
    assert (top_cpu == top_gpu).mean() > 0.95  # float rounding may swap near-ties
    m_cpu, m_gpu = cpu.evaluate("test"), gpu.evaluate("test")
    assert m_gpu["recall@20"] == pytest.approx(m_cpu["recall@20"], abs=0.01)


def test_gpu_checkpoint_resumes_on_cpu(tmp_path):
    gpu = _trainer("cuda", 2, tmp_path)
    gpu.train_epoch()
    gpu.epoch = 1
    gpu.save("last.npz")
    cpu = _trainer("cpu", 2, tmp_path)
    cpu.restore(tmp_path / "cuda" / "last.npz")
    np.testing.assert_allclose(cpu.model.embedding.data, backend.to_numpy(gpu.model.embedding.data))
    assert cpu.epoch == 1 and cpu.optimizer.t == gpu.optimizer.t


def test_gradients_on_gpu_match_finite_differences():
    import cupy
    from gnaq import autograd as ag
    from gnaq.autograd.gradcheck import op_cases
    for name, fn, inputs in op_cases(seed=0):
        if name.startswith(("spmm", "propagate")):
            continue  # their matrix is a scipy constant; covered by the model tests above
        tensors = [ag.Tensor(cupy.asarray(a), requires_grad=True) for a in inputs]
        cpu_tensors = [ag.Tensor(np.array(a), requires_grad=True) for a in inputs]
        out, out_cpu = fn(*tensors), fn(*cpu_tensors)
        weight = np.random.default_rng(0).standard_normal(out_cpu.shape)
        out.backward(cupy.asarray(weight))
        out_cpu.backward(weight)
        for t, c in zip(tensors, cpu_tensors):
            np.testing.assert_allclose(cupy.asnumpy(t.grad), c.grad, rtol=1e-10, atol=1e-12, err_msg=name)


def test_export_from_gpu_equals_cpu_format(tmp_path):
    from gnaq.export import build_sections
    gpu, cpu = _trainer("cuda", 2, tmp_path), _trainer("cpu", 2, tmp_path)  # same seed, untrained
    header, sections = build_sections(gpu.model, gpu.data)
    header_cpu, sections_cpu = build_sections(cpu.model, cpu.data)
    kind = "propagate" if gpu.model.quantizer.deploys == "layer0" else "quantized"
    assert header["kind"] == kind and header == header_cpu and set(sections) == set(sections_cpu)
    assert {"user_codes", "item_scales"} <= set(sections) and any(k.startswith("history_") for k in sections)
    for name in sections:  # the data's sections byte for byte; codes up to float rounding at ties
        a, b = np.frombuffer(bytes(sections[name]), np.uint8), np.frombuffer(bytes(sections_cpu[name]), np.uint8)
        assert len(a) == len(b), name
        if not name.endswith(("codes", "scales")):
            assert (a == b).all(), name
