"""Training: the one engine (:mod:`graft.training.engine`, Lightning), the one LightningModule
(:mod:`graft.training.module`), the phase runner that turns a strategy's plan into trained
weights (:mod:`graft.training.runner`), and what they share (phases, loaders, samplers)."""
