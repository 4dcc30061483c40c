"""Export for production: a fitted model as ONNX or TorchScript with its preprocessing beside it
(:mod:`graft.export.exporter`), and the engine that runs such an export
(:mod:`graft.export.engine`)."""
