"""Figures a person would rather look at, for every part of the pipeline: retrieval (CMC, t-SNE, search rankings),
training (curves, ablation bars) and SEG (the paper's Fig. 3). Each writes one PNG atomically."""
