"""PyTorch reference of DLVP-CLIP: the ground truth the exporter and every runtime are checked against.

The function it computes is fixed by ``model-spec/README.md``; ``spec`` reads the model spec,
``clip`` builds the OpenCLIP towers it describes, ``checkpoint`` reads and writes the
self-describing safetensors checkpoint format.
"""
